using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Sio.Benchmarking;

public sealed record ColdStartResult(string Model, string Graph, double ColdStartMs, double LoadMs, double FirstTokenMs);

/// <summary>
/// Cold start as a user feels it: a fresh `sio generate MODEL --max-tokens 1 --json` process per run,
/// timed from its start to its exit after printing the first token; the child reports how long the
/// model took to load and the first token to come. Models are interleaved run by run; medians count.
/// </summary>
public static class ColdStartBenchmark
{
    public static List<ColdStartResult> Run(IReadOnlyList<string> models, int runs, IProgress<string>? progress = null)
    {
        if (runs < 1) throw new SioException("--runs must be ≥ 1");
        var samples = models.Select(_ => new List<(double Wall, double Load, double First, string Graph)>()).ToArray();
        for (int r = 0; r <= runs; r++)
            for (int m = 0; m < models.Count; m++)
            {
                progress?.Report($"run {r}/{runs}: {Path.GetFileName(models[m])}");
                var s = StartOnce(models[m]);
                if (r > 0) samples[m].Add(s); // run 0 warms the file cache
            }
        return models.Select((m, i) => new ColdStartResult(Path.GetFullPath(m), samples[i][0].Graph,
            DecodeBenchmark.Median(samples[i].Select(s => s.Wall).ToList()),
            DecodeBenchmark.Median(samples[i].Select(s => s.Load).ToList()),
            DecodeBenchmark.Median(samples[i].Select(s => s.First).ToList()))).ToList();
    }

    static (double Wall, double Load, double First, string Graph) StartOnce(string model)
    {
        var self = Environment.ProcessPath!;
        var psi = new ProcessStartInfo(self) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") psi.ArgumentList.Add(Environment.GetCommandLineArgs()[0]);
        foreach (var a in new[] { "generate", model, "--prompt", "Once upon a time", "--max-tokens", "1", "--json" }) psi.ArgumentList.Add(a);
        var clock = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEnd();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        double wall = clock.Elapsed.TotalMilliseconds;
        if (p.ExitCode != 0) throw new SioException($"cold start of {model} failed: {stderr.Trim()}");
        var j = JsonNode.Parse(stdout)!;
        return (wall, j["load_ms"]!.GetValue<double>(), j["prefill_ms"]!.GetValue<double>(), j["graph"]!.GetValue<string>());
    }
}
