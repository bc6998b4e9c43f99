using System.Diagnostics;
using Onnx;
using Sio.Generation;
using Sio.Onnx;

namespace Sio.Benchmarking;

public sealed record DecodeBenchmarkOptions
{
    public int PromptTokens { get; init; } = 128;
    public int DecodeTokens { get; init; } = 128;
    public int Runs { get; init; } = 5;
    public int Threads { get; init; }
    public bool MeasureBandwidth { get; init; } = true;
}

public sealed record DecodeBenchmarkResult(
    int PromptTokens, int DecodeTokens, int Runs,
    double PrefillTokensPerSecond, double DecodeTokensPerSecond,
    long WeightBytesPerToken, double BandwidthGBps, double BoundTokensPerSecond)
{
    /// <summary>Decode speed as a fraction of the memory-bandwidth bound.</summary>
    public double FractionOfBound => BoundTokensPerSecond > 0 ? DecodeTokensPerSecond / BoundTokensPerSecond : 0;
}

/// <summary>
/// Prefill and decode tokens/s at batch 1 (medians over runs, a warm-up run excluded), beside the
/// bound set by memory bandwidth: bandwidth ÷ bytes of weights each decode step must read.
/// </summary>
public static class DecodeBenchmark
{
    public static DecodeBenchmarkResult Run(Model model, DecodeBenchmarkOptions o, IProgress<string>? progress = null)
    {
        var c = model.Config;
        if (o.PromptTokens < 1 || o.DecodeTokens < 1 || o.Runs < 1) throw new SioException("prompt tokens, decode tokens and runs must be ≥ 1");
        if (o.PromptTokens + o.DecodeTokens > c.ContextLength)
            throw new SioException($"prompt ({o.PromptTokens}) + decode ({o.DecodeTokens}) tokens exceed the model's context of {c.ContextLength}");
        var rng = new Random(42);
        var prompt = new int[o.PromptTokens];
        prompt[0] = c.BosTokenId;
        for (int i = 1; i < prompt.Length; i++) prompt[i] = rng.Next(3, c.VocabSize);

        // This kind of machine's bandwidth drifts (shared hosts): measure it right before and after the runs, and use the mean.
        double bwBefore = o.MeasureBandwidth ? MemoryBandwidth.MeasureGBps(o.Threads) : 0;
        using var generator = new Generator(model, o.PromptTokens + o.DecodeTokens);
        var prefill = new List<double>();
        var decode = new List<double>();
        for (int run = 0; run <= o.Runs; run++)
        {
            progress?.Report(run == 0 ? "warm-up" : $"run {run}/{o.Runs}");
            generator.RewindTo(0);
            var sw = Stopwatch.StartNew();
            generator.AppendTokens(prompt);
            double p = sw.Elapsed.TotalSeconds;
            int next = Sampler.ArgMax(generator.LastLogits);
            sw.Restart();
            for (int i = 0; i < o.DecodeTokens; i++)
            {
                generator.AppendTokens([next]);
                next = Sampler.ArgMax(generator.LastLogits);
            }
            double d = sw.Elapsed.TotalSeconds;
            if (run == 0) continue; // warm-up
            prefill.Add(o.PromptTokens / p);
            decode.Add(o.DecodeTokens / d);
        }
        // the native decoder streams its own layout (2-byte scales, say), so its bound counts what it stores
        long weightBytes = model.Native?.WeightBytes ?? WeightBytesPerToken(Path.Combine(model.Folder, model.Manifest.ModelFile));
        double bw = 0;
        if (o.MeasureBandwidth)
        {
            progress?.Report("memory bandwidth");
            bw = (bwBefore + MemoryBandwidth.MeasureGBps(o.Threads)) / 2;
        }
        return new DecodeBenchmarkResult(o.PromptTokens, o.DecodeTokens, o.Runs, Median(prefill), Median(decode), weightBytes, bw,
            bw > 0 ? bw * 1e9 / weightBytes : 0);
    }

    /// <summary>
    /// Bytes of weights a decode step reads: every initializer of the graph except lookup tables
    /// (Gather data, of which one row is read) and the rotary tables.
    /// </summary>
    public static long WeightBytesPerToken(string modelPath)
    {
        var model = OnnxModelFile.Read(modelPath);
        var gathered = model.Graph.Node.Where(n => n.OpType == "Gather").Select(n => n.Input[0]).ToHashSet();
        long total = 0;
        foreach (var t in model.Graph.Initializer)
        {
            if (gathered.Contains(t.Name) || t.Name is "cos_cache" or "sin_cache") continue;
            var length = t.ExternalData.FirstOrDefault(e => e.Key == "length")?.Value;
            total += length is not null ? long.Parse(length) : t.RawData.Length;
        }
        return total;
    }

    public static double Median(IReadOnlyList<double> xs)
    {
        if (xs.Count == 0) return 0;
        var s = xs.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }
}
