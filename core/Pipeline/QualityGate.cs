namespace Sio.Pipeline;

/// <summary>The gate's verdict: the variant chosen (if any) and, for every variant, why it passed or not.</summary>
public sealed record GateDecision(bool Passed, string? Chosen, IReadOnlyList<GateCheck> Checks, string Target = "stack");
public sealed record GateCheck(string Variant, bool Passed, double PerplexityIncreasePercent, double Speedup, double PricePerMillionTokens, IReadOnlyList<string> Failures,
    double? MeanKld = null, double? SameTopToken = null);

/// <summary>
/// The quality and cost gate (pure): each variant is compared with the baseline on perplexity
/// increase, KL divergence and same-top-token rate (when asked for), decode speedup at concurrency 1 (p50 time per output token) and blended price. Of the variants that pass, the
/// target chooses: by default the one with the most techniques stacked (the recipe is what the user asked for; its
/// shorter prefixes are the fallbacks when the full stack fails a gate), or the lowest latency, the most throughput or the lowest cost.
/// </summary>
public static class QualityGate
{
    public static readonly string[] Targets = ["stack", "latency", "throughput", "cost"];

    public static GateDecision Evaluate(VariantMeasurement baseline, IReadOnlyList<VariantMeasurement> variants, QualityGates gates, string? target = null)
    {
        var checks = new List<GateCheck>();
        var baseLevel = baseline.At(1) ?? baseline.Levels[0];
        foreach (var v in variants)
        {
            double ppl = (v.Perplexity / baseline.Perplexity - 1) * 100;
            // decode speedup: time per output token (prefill, which no technique here speeds up much, is reported apart as TTFT)
            var level = v.At(1) ?? v.Levels[0];
            double speedup = baseLevel.TpotP50Ms > 0 && level.TpotP50Ms > 0 ? baseLevel.TpotP50Ms / level.TpotP50Ms : level.OutputTokensPerSecond / baseLevel.OutputTokensPerSecond;
            double price = v.CheapestPricePerMillionTokens;
            var failures = new List<string>();
            if (gates.MaxPerplexityIncreasePercent is double mp && !(ppl <= mp)) failures.Add($"perplexity +{ppl:F2} % exceeds the {mp} % allowed");
            if (gates.MinSpeedup is double ms && !(speedup >= ms)) failures.Add($"speedup {speedup:F2}x is under the {ms}x required");
            if (gates.MaxPricePerMillionTokens is double mx && !(price <= mx)) failures.Add($"${price:G4} per 1M tokens exceeds the ${mx} allowed");
            var d = v.FromBaseline;
            if (gates.MaxKld is double mk && !(d?.MeanKld <= mk)) failures.Add(d is null ? "no KL divergence was measured" : $"KL divergence {d.MeanKld:G3} exceeds the {mk} allowed");
            if (gates.MinSameTopToken is double mt && !(d?.SameTopToken >= mt))
                failures.Add(d is null ? "no same-top-token rate was measured" : $"same top token {100 * d.SameTopToken:F1} % is under the {100 * mt:0.#} % required");
            if (v.ExactChecked is int n && v.ExactOutputs is int same && same < n)
                failures.Add($"speculative output differed from plain greedy decoding on {n - same} of {n} evaluation prompts");
            if (v.Levels.Any(l => l.Errors > 0)) failures.Add($"{v.Levels.Sum(l => l.Errors)} benchmark requests failed");
            checks.Add(new GateCheck(v.Variant, failures.Count == 0, Math.Round(ppl, 3), Math.Round(speedup, 3), price, failures, d?.MeanKld, d?.SameTopToken));
        }
        var winner = Choose(variants, checks, target ?? "stack");
        return new GateDecision(winner is not null, winner, checks, target ?? "stack");
    }

    /// <summary>Among the variants that passed, the one the target prefers; ties go to the one with more techniques stacked
    /// (variants come in recipe order, each stacking one more).</summary>
    static string? Choose(IReadOnlyList<VariantMeasurement> variants, IReadOnlyList<GateCheck> checks, string target)
    {
        var passed = variants.Select((v, i) => (v, i)).Where(x => checks[x.i].Passed).Select(x => (x.v, Order: x.i)).ToList();
        if (passed.Count == 0) return null;
        double Score(VariantMeasurement v) => target switch
        {
            "latency" => (v.At(1) ?? v.Levels[0]) is var l && l.TpotP50Ms > 0 ? l.TpotP50Ms : double.PositiveInfinity,
            "throughput" => -v.Levels.Max(l => l.OutputTokensPerSecond),
            "cost" => v.CheapestPricePerMillionTokens,
            _ => 0, // stack: every passing variant scores the same, so the most stacked wins
        };
        return passed.OrderBy(x => Score(x.v)).ThenByDescending(x => x.Order).First().v.Variant;
    }
}
