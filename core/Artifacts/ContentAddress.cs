using System.Security.Cryptography;
using System.Text;

namespace Sio.Artifacts;

/// <summary>
/// sio's one content address: every artifact (an imported, quantized or compiled model, a staged dataset, a datastore,
/// a measurement, the local compile cache's entries) is keyed by what it was made from. The first part names the kind
/// and its version ("quantize/4"), so a change to how a kind is made changes every key of that kind.
/// </summary>
public static class ContentAddress
{
    /// <summary>SHA-256 of the parts, one per line, as 32 hex digits.</summary>
    public static string Of(params object?[] parts) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join("\n", parts.Select(p => p?.ToString() ?? "")))))[..32];
}
