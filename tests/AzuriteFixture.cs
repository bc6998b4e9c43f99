using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Sio.Tests;

/// <summary>
/// A real Azurite (npm azurite 3.37.0) on 127.0.0.1 for the tests: installed into .azurite/ on first
/// use (npm), started on free ports with telemetry off and in-memory persistence, stopped at the end.
/// </summary>
public sealed class AzuriteFixture : IDisposable
{
    public const string Version = "3.37.0";
    readonly Process _process;
    public int BlobPort { get; }
    public int QueuePort { get; }
    public int TablePort { get; }
    public string ConnectionString { get; }

    public AzuriteFixture()
    {
        var dir = Path.Combine(TestPaths.RepoRoot, ".azurite");
        var bin = Path.Combine(dir, "node_modules", ".bin", "azurite");
        if (!File.Exists(bin))
        {
            Directory.CreateDirectory(dir);
            Run("npm", $"install --no-audit --no-fund --loglevel=error --prefix {dir} azurite@{Version}", TimeSpan.FromMinutes(5));
            if (!File.Exists(bin)) throw new InvalidOperationException($"npm did not install azurite into {dir}");
        }
        (BlobPort, QueuePort, TablePort) = (FreePort(), FreePort(), FreePort());
        var location = TestPaths.TempDir("azurite");
        _process = Process.Start(new ProcessStartInfo("node",
            $"{bin} --disableTelemetry --skipApiVersionCheck --silent --location {location} " +
            $"--blobHost 127.0.0.1 --blobPort {BlobPort} --queueHost 127.0.0.1 --queuePort {QueuePort} --tableHost 127.0.0.1 --tablePort {TablePort}")
        { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false })!;
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!Listening(BlobPort) || !Listening(QueuePort) || !Listening(TablePort))
        {
            if (_process.HasExited) throw new InvalidOperationException($"azurite exited with {_process.ExitCode}");
            if (DateTime.UtcNow > deadline) throw new TimeoutException("azurite did not start listening in 30 s");
            Thread.Sleep(100);
        }
        const string account = "devstoreaccount1", key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
        ConnectionString = $"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};" +
            $"BlobEndpoint=http://127.0.0.1:{BlobPort}/{account};QueueEndpoint=http://127.0.0.1:{QueuePort}/{account};TableEndpoint=http://127.0.0.1:{TablePort}/{account};";
    }

    static void Run(string file, string args, TimeSpan timeout)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var err = p.StandardError.ReadToEndAsync();
        p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(timeout)) { p.Kill(true); throw new TimeoutException($"{file} {args} took over {timeout}"); }
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {args} failed ({p.ExitCode}): {err.Result}");
    }

    static bool Listening(int port)
    {
        try { using var c = new TcpClient(); c.Connect(IPAddress.Loopback, port); return true; }
        catch (SocketException) { return false; }
    }

    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public void Dispose()
    {
        try { _process.Kill(true); _process.WaitForExit(10_000); } catch (InvalidOperationException) { }
        _process.Dispose();
    }
}

[CollectionDefinition("azurite")]
public sealed class AzuriteCollection : ICollectionFixture<AzuriteFixture>;
