using System.Net;

namespace Sio.Serving;

/// <summary>
/// Where a server listens, parsed once from --host: an IPv4 or IPv6 literal (brackets allowed: [::1]) or "localhost".
/// Hosts bind exactly <see cref="Address"/>; anything that is not provably loopback counts as public and needs a key.
/// </summary>
public sealed record ListenAddress(IPAddress Address, int Port)
{
    public bool IsLoopback => IPAddress.IsLoopback(Address);

    /// <summary>How a URL spells it: http://127.0.0.1:8000, http://[::1]:8000.</summary>
    public string Url => $"http://{(Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{Address}]" : Address.ToString())}:{Port}";

    public static ListenAddress Parse(string host, int port)
    {
        if (port is < 0 or > 65535) throw new SioException($"--port: must be 0–65535, got {port}");
        var h = (host ?? "").Trim();
        if (h.Length == 0) throw new SioException("--host: empty; give an IP address such as 127.0.0.1, ::1 or 0.0.0.0");
        if (h.Equals("localhost", StringComparison.OrdinalIgnoreCase)) return new(IPAddress.Loopback, port);
        if (h.StartsWith('[') && h.EndsWith(']')) h = h[1..^1];
        if (h.Contains('%')) throw new SioException($"--host {host}: a scoped IPv6 address is not supported; give the address without %ZONE");
        if (!IPAddress.TryParse(h, out var ip) || (ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && h.Count(c => c == '.') != 3))
            throw new SioException($"--host {host}: not an IP address; give 127.0.0.1 (this machine only), ::1, 0.0.0.0 or :: (every interface, key required), or one interface's address");
        if (ip.IsIPv4MappedToIPv6)
            throw new SioException($"--host {host}: an IPv4-mapped IPv6 address; give the IPv4 address ({ip.MapToIPv4()}) itself");
        return new(ip, port);
    }

    /// <summary>The key every request must carry: the option, else SIO_API_KEY, else the file named by SIO_API_KEY_FILE; required off loopback.</summary>
    public string? RequireKey(string? option)
    {
        var key = ApiKey.Resolve(option);
        if (!IsLoopback && key is null)
            throw new SioException($"--host {Address}: not a loopback address, so every endpoint needs a key: set SIO_API_KEY (or SIO_API_KEY_FILE, or --api-key)");
        return key;
    }
}
