using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Sio.Benchmarking;

/// <param name="Sio">The sio build that was started: a path, or null for the running one.</param>
/// <param name="Env">The extra environment variable it was started with (NAME=VALUE), or null.</param>
public sealed record ColdStartResult(string? Sio, string? Env, string Model, string Graph, double ColdStartMs, double LoadMs, double FirstTokenMs);

/// <summary>
/// Cold start as a user feels it: a fresh `sio generate MODEL --max-tokens 1 --json` process per run,
/// timed from its start until its answer, printed after the first token, is out; the child reports how long the
/// model took to load and the first token to come. Models (and sio builds, e.g. a ReadyToRun publish beside a plain
/// build) are interleaved run by run; medians count.
/// </summary>
public static class ColdStartBenchmark
{
    /// <param name="builds">sio executables (or sio.dll, started through dotnet) to start; null or empty: the running one.</param>
    /// <param name="withEnv">NAME=VALUE: every build and model is also started with this variable set (e.g. a glibc tunable).</param>
    public static List<ColdStartResult> Run(IReadOnlyList<string> models, int runs, IReadOnlyList<string>? builds = null, string? withEnv = null, IProgress<string>? progress = null)
    {
        if (runs < 1) throw new SioException("--runs must be ≥ 1");
        foreach (var b in builds ?? []) if (!File.Exists(b)) throw SioException.InFile(b, "sio build not found (give the sio executable or sio.dll of a build or publish folder)");
        if (withEnv is not null && (withEnv.IndexOf('=') is <= 0)) throw new SioException($"--with-env must be NAME=VALUE, got '{withEnv}'");
        var envs = withEnv is null ? [null] : new[] { null, withEnv };
        var starts = (builds is { Count: > 0 } ? builds.Select(b => (string?)Path.GetFullPath(b)) : [(string?)null])
            .SelectMany(b => envs.SelectMany(e => models.Select(m => (Sio: b, Env: e, Model: m)))).ToList();
        var samples = starts.Select(_ => new List<(double Wall, double Load, double First, string Graph)>()).ToArray();
        for (int r = 0; r <= runs; r++)
            for (int i = 0; i < starts.Count; i++)
            {
                progress?.Report($"run {r}/{runs}: {Path.GetFileName(starts[i].Model)}");
                var s = StartOnce(starts[i].Sio, starts[i].Env, starts[i].Model);
                if (r > 0) samples[i].Add(s); // run 0 warms the file cache
            }
        return starts.Select((st, i) => new ColdStartResult(st.Sio, st.Env, Path.GetFullPath(st.Model), samples[i][0].Graph,
            DecodeBenchmark.Median(samples[i].Select(s => s.Wall).ToList()),
            DecodeBenchmark.Median(samples[i].Select(s => s.Load).ToList()),
            DecodeBenchmark.Median(samples[i].Select(s => s.First).ToList()))).ToList();
    }

    static (double Wall, double Load, double First, string Graph) StartOnce(string? sio, string? env, string model)
    {
        var (exe, dll) = sio is null
            ? (Environment.ProcessPath!, Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet" ? Environment.GetCommandLineArgs()[0] : null)
            : sio.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) ? ("dotnet", sio) : (sio, null);
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (dll is not null) psi.ArgumentList.Add(dll);
        if (env is not null) psi.Environment[env[..env.IndexOf('=')]] = env[(env.IndexOf('=') + 1)..];
        foreach (var a in new[] { "generate", model, "--prompt", "Once upon a time", "--max-tokens", "1", "--json" }) psi.ArgumentList.Add(a);
        var clock = Stopwatch.StartNew();
        Process p;
        try { p = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception e) { throw new SioException($"cannot start {exe} for a cold start of {model}: {e.Message}"); }
        using var _ = p;
        var stderr = p.StandardError.ReadToEndAsync();
        // the cold start ends when the answer (one JSON object, written after the first token) is out, not when the
        // process has finished tearing down (another 15–30 ms here)
        var stdout = new System.Text.StringBuilder();
        JsonNode? j = null;
        double answered = 0;
        for (string? line; (line = p.StandardOutput.ReadLine()) is not null;)
        {
            stdout.AppendLine(line);
            if (j is null && line.TrimEnd().EndsWith('}'))
                try { j = JsonNode.Parse(stdout.ToString()); answered = clock.Elapsed.TotalMilliseconds; }
                catch (System.Text.Json.JsonException) { } // not the whole object yet
        }
        p.WaitForExit();
        if (p.ExitCode != 0) throw new SioException($"cold start of {model} failed: {stderr.Result.Trim()}");
        if (j is null) throw new SioException($"cold start of {model}: sio generate printed no JSON answer: {stdout.ToString().Trim()}");
        return (answered, j["load_ms"]!.GetValue<double>(), j["prefill_ms"]!.GetValue<double>(), j["graph"]!.GetValue<string>());
    }
}
