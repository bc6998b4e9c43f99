using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace Sio.Compilation;

/// <summary>What an optimized graph may depend on: CPU model and instruction-set flags, core count, OS architecture.</summary>
public static class HardwareFingerprint
{
    static readonly Lazy<(string Description, string Hash)> Current = new(Compute);

    public static string Description => Current.Value.Description;
    public static string Hash => Current.Value.Hash;

    static (string, string) Compute()
    {
        string model = "", flags = "";
        try
        {
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
            {
                if (model.Length == 0 && line.StartsWith("model name")) model = line[(line.IndexOf(':') + 1)..].Trim();
                if (flags.Length == 0 && (line.StartsWith("flags") || line.StartsWith("Features"))) flags = line[(line.IndexOf(':') + 1)..].Trim();
                if (model.Length > 0 && flags.Length > 0) break;
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        var description = $"{(model.Length > 0 ? model : "unknown cpu")}, {Environment.ProcessorCount} cores, {RuntimeInformation.ProcessArchitecture}";
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{description}|{flags}")))[..16];
        return (description, hash);
    }
}
