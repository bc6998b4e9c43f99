using System.Security.Cryptography;
using System.Text;

namespace Sio.Serving;

/// <summary>The API key: where it comes from (never required on the command line) and how a request's header is checked.</summary>
public static class ApiKey
{
    public const string Variable = "SIO_API_KEY", FileVariable = "SIO_API_KEY_FILE";

    /// <summary>The option if given, else $SIO_API_KEY, else the first line of the file $SIO_API_KEY_FILE names; null when none.</summary>
    public static string? Resolve(string? option)
    {
        if (!string.IsNullOrEmpty(option)) return option;
        if (Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } env) return env;
        if (Environment.GetEnvironmentVariable(FileVariable) is not { Length: > 0 } file) return null;
        try
        {
            var key = File.ReadLines(file).FirstOrDefault()?.Trim();
            return string.IsNullOrEmpty(key) ? throw SioException.InFile(file, $"{FileVariable} names an empty file") : key;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw SioException.InFile(file, $"{FileVariable}: cannot read the key ({e.Message})");
        }
    }

    /// <summary>True when an Authorization header carries the key: "Bearer KEY", the scheme in any case, compared in constant time.</summary>
    public static bool Matches(string? authorization, string key)
    {
        if (authorization is null) return false;
        var a = authorization.AsSpan().Trim();
        const string scheme = "Bearer ";
        if (a.Length <= scheme.Length || !a[..scheme.Length].Equals(scheme, StringComparison.OrdinalIgnoreCase)) return false;
        return Same(a[scheme.Length..].Trim(), key);
    }

    /// <summary>Constant-time equality of a presented secret and the expected one (compared as SHA-256 digests, so lengths do not leak either).</summary>
    public static bool Same(ReadOnlySpan<char> presented, string expected)
    {
        var p = Encoding.UTF8.GetBytes(presented.ToArray());
        var e = Encoding.UTF8.GetBytes(expected);
        return CryptographicOperations.FixedTimeEquals(SHA256.HashData(p), SHA256.HashData(e));
    }
}
