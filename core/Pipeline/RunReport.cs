using System.Text;
using Sio.Speculative;

namespace Sio.Pipeline;

/// <summary>What a run's report says beyond its measurements: the preset serving configurations and the Markdown summary.</summary>
public static class RunReport
{
    /// <summary>Lowest latency (p50 time per output token), lowest cost and balanced (cheapest within twice the lowest
    /// latency), over every level of the variants the gate passed (what can be deployed), or of every variant when none did.</summary>
    public static Dictionary<string, object> Presets(IReadOnlyList<VariantMeasurement> variants, GateDecision decision)
    {
        var passed = decision.Checks.Where(c => c.Passed).Select(c => c.Variant).ToHashSet();
        var all = variants.Where(v => passed.Count == 0 || passed.Contains(v.Variant))
            .SelectMany(v => v.Levels.Where(l => l.TpotP50Ms > 0 && double.IsFinite(l.BlendedPricePerMillionTokens)).Select(l => (v.Variant, v.Drafter, Level: l))).ToList();
        if (all.Count == 0) return [];
        object P((string Variant, string Drafter, LevelMeasurement Level) x) => new
        {
            variant = x.Variant, drafter = x.Drafter, concurrency = x.Level.Concurrency, tpotP50Ms = x.Level.TpotP50Ms, itlP50Ms = x.Level.ItlP50Ms, ttftP50Ms = x.Level.TtftP50Ms,
            outputTokensPerSecond = x.Level.OutputTokensPerSecond, pricePerMillionTokens = x.Level.BlendedPricePerMillionTokens,
        };
        var fastest = all.MinBy(x => x.Level.TpotP50Ms);
        var cheapest = all.MinBy(x => x.Level.BlendedPricePerMillionTokens);
        var balanced = all.Where(x => x.Level.TpotP50Ms <= 2 * fastest.Level.TpotP50Ms).MinBy(x => x.Level.BlendedPricePerMillionTokens);
        return new() { ["lowestLatency"] = P(fastest), ["lowestCost"] = P(cheapest), ["balanced"] = P(balanced) };
    }

    public static string Markdown(PublishInput input)
    {
        var sb = new StringBuilder($"# Optimization {input.RunId}\n\nRecipe `{input.Request.Recipe}` on `{input.Request.Model}`, dataset `{input.Request.Dataset}`.\n\n");
        sb.AppendLine("Perplexity on the evaluation half of the dataset (odd records; even records calibrate). TPOT: time per output token after the first, p50.\n");
        sb.AppendLine("| variant | drafter | perplexity | c | output tok/s | TTFT p50 ms | TPOT p50 ms | ITL p50 ms | $/1M tokens |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var v in input.Variants)
            foreach (var l in v.Levels)
                sb.AppendLine($"| {v.Variant} | {(DrafterSpec.Parse(v.Drafter).Kind == DrafterKind.Datastore ? "datastore" : v.Drafter)} | {v.Perplexity:F4} | {l.Concurrency} | {l.OutputTokensPerSecond:F1} | {l.TtftP50Ms:F2} | {l.TpotP50Ms:F3} | {l.ItlP50Ms:F3} | {l.BlendedPricePerMillionTokens:G4} |");
        var compared = input.Variants.Where(v => v.FromBaseline is { Tokens: > 0 }).ToList();
        if (compared.Count > 0)
        {
            sb.AppendLine("\nAgainst the baseline's next-token distributions on the same tokens (KL divergence in nats per token, as llama.cpp reports it):\n");
            sb.AppendLine("| variant | KL divergence mean | KL divergence p99 | same top token | tokens |");
            sb.AppendLine("|---|---|---|---|---|");
            foreach (var v in compared)
                sb.AppendLine($"| {v.Variant} | {v.FromBaseline!.MeanKld:G4} | {v.FromBaseline.P99Kld:G4} | {100 * v.FromBaseline.SameTopToken:F2} % | {v.FromBaseline.Tokens} |");
        }
        foreach (var v in input.Variants.Where(v => v.ExactChecked is not null))
            sb.AppendLine($"\n{v.Variant}: greedy output with the drafter equal to plain greedy decoding on {v.ExactOutputs}/{v.ExactChecked} evaluation prompts.");
        sb.AppendLine($"\n## Gate\n\n{(input.Decision.Passed ? $"Passed: **{input.Decision.Chosen}** (chosen by {(input.Decision.Target == "stack" ? "the most techniques stacked" : $"target {input.Decision.Target}")} among the variants that passed)." : "No variant passed.")}\n");
        foreach (var c in input.Decision.Checks)
            sb.AppendLine($"- {c.Variant}: perplexity {c.PerplexityIncreasePercent:+0.00;-0.00} %{(c.MeanKld is double k ? $", KL divergence {k:G3}, same top token {100 * c.SameTopToken:F1} %" : "")}, speedup {c.Speedup:F2}x, ${c.PricePerMillionTokens:G4}/1M — {(c.Passed ? "pass" : string.Join("; ", c.Failures))}");
        return sb.ToString();
    }
}
