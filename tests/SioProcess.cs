using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;

namespace Sio.Tests;

/// <summary>A real `sio` process (dotnet sio.dll …), its output kept, killed on dispose; it can list the sockets it listens on.</summary>
public sealed class SioProcess : IDisposable
{
    readonly Process _process;
    readonly StringBuilder _output = new();

    public string Output { get { lock (_output) return _output.ToString(); } }

    public SioProcess(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "sio.dll"), .. args])
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        };
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) info.Environment[k] = v;
        _process = Process.Start(info)!;
        _process.OutputDataReceived += (_, e) => { lock (_output) _output.AppendLine(e.Data); };
        _process.ErrorDataReceived += (_, e) => { lock (_output) _output.AppendLine(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>Waits until GET healthz answers at the base URL (or the process exits).</summary>
    public async Task WaitReadyAsync(Uri baseUri)
    {
        using var http = new HttpClient { BaseAddress = baseUri, Timeout = TimeSpan.FromSeconds(5) };
        for (int i = 0; i < 300; i++)
        {
            if (_process.HasExited) throw new InvalidOperationException($"sio exited with {_process.ExitCode}: {Output}");
            try { if ((await http.GetAsync("healthz")).IsSuccessStatusCode) return; }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { }
            await Task.Delay(100);
        }
        throw new TimeoutException($"sio did not become ready at {baseUri}: {Output}");
    }

    /// <summary>Every TCP socket the process listens on (from /proc/net/tcp and tcp6, matched to its file descriptors).</summary>
    public IReadOnlyList<IPEndPoint> ListeningSockets()
    {
        var inodes = new HashSet<string>();
        foreach (var fd in Directory.GetFiles($"/proc/{_process.Id}/fd"))
        {
            try { if (new FileInfo(fd).LinkTarget is { } t && t.StartsWith("socket:[")) inodes.Add(t[8..^1]); }
            catch (IOException) { }
        }
        var found = new List<IPEndPoint>();
        foreach (var table in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
            foreach (var line in File.ReadLines(table).Skip(1))
            {
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (f[3] != "0A" || !inodes.Contains(f[9])) continue; // 0A: LISTEN
                var (hex, port) = (f[1].Split(':')[0], int.Parse(f[1].Split(':')[1], NumberStyles.HexNumber));
                var bytes = new byte[hex.Length / 2];
                for (int w = 0; w < bytes.Length / 4; w++) // each 32-bit word is printed in host (little-endian) order
                    for (int b = 0; b < 4; b++) bytes[w * 4 + b] = byte.Parse(hex.AsSpan(w * 8 + (3 - b) * 2, 2), NumberStyles.HexNumber);
                found.Add(new IPEndPoint(new IPAddress(bytes), port));
            }
        return found;
    }

    /// <summary>Waits for the process to end by itself; false if it is still running after the timeout.</summary>
    public bool WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout)) return false;
        _process.WaitForExit(); // and for its output to be read
        return true;
    }

    public int ExitCode => _process.ExitCode;

    /// <summary>Sends SIGINT, as Ctrl+C in a terminal does.</summary>
    public void Interrupt()
    {
        using var kill = Process.Start("kill", ["-INT", _process.Id.ToString(CultureInfo.InvariantCulture)])!;
        kill.WaitForExit();
    }

    public void Dispose()
    {
        try { if (!_process.HasExited) _process.Kill(true); _process.WaitForExit(); } catch (InvalidOperationException) { }
        _process.Dispose();
    }
}
