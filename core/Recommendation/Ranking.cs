using Sio.Benchmarking;

namespace Sio.Recommendation;

/// <summary>A candidate that reached the load stage: its quality and its measurement under load.</summary>
public sealed record Finalist(Candidate Candidate, QualityScore Quality, CandidateMeasurement Load);

/// <summary>
/// Turns finalists into ranked entries (pure): each candidate's concurrency limits that keep every latency objective at
/// p99 (and lost no request), the best of them for the target on each instance measured here, with replicas to sustain
/// the request rate; then the order, the Pareto front and the reasons for what did not make it.
/// </summary>
public static class Ranking
{
    public static (List<RankedEntry> Ranked, List<ParetoPoint> Pareto, List<Discarded> Discarded) Rank(RecommendationRequest request, IReadOnlyList<Finalist> finalists,
        IReadOnlyList<Instance> instances)
    {
        var slo = request.Objectives;
        var entries = new List<(RankedEntry Entry, double Score)>();
        var discarded = new List<Discarded>();
        var points = new List<(Finalist F, LoadLevel L)>();
        foreach (var f in finalists)
        {
            var kept = new List<LoadLevel>();
            foreach (var l in f.Load.Levels)
            {
                if (Misses(l, slo) is { } miss) discarded.Add(new Discarded($"{f.Candidate.Name}/c{l.Concurrency}", "slo", miss));
                else kept.Add(l);
            }
            if (kept.Count == 0) continue;
            points.AddRange(kept.Select(l => (f, l)));
            foreach (var instance in instances)
            {
                var best = kept.OrderBy(l => Score(request.Target, l, instance.PricePerHour)).ThenByDescending(l => l.OutputTokensPerSecond).First();
                entries.Add((Entry(request, f, best, instance), Score(request.Target, best, instance.PricePerHour)));
            }
        }
        var ranked = entries.OrderBy(e => e.Score).ThenBy(e => e.Entry.Quality.Bytes).ThenBy(e => e.Entry.Variant, StringComparer.Ordinal)
            .Select((e, i) => e.Entry with { Rank = i + 1 }).ToList();
        var pareto = points.Select(p => new ParetoPoint(p.F.Candidate.Name, p.L.Concurrency, p.L.PerUserTokensPerSecond, p.L.OutputTokensPerSecond,
            !points.Any(o => o.L.PerUserTokensPerSecond >= p.L.PerUserTokensPerSecond && o.L.OutputTokensPerSecond >= p.L.OutputTokensPerSecond
                && (o.L.PerUserTokensPerSecond > p.L.PerUserTokensPerSecond || o.L.OutputTokensPerSecond > p.L.OutputTokensPerSecond)))).ToList();
        return (ranked, pareto, discarded);
    }

    /// <summary>Why a level misses the objectives (p99 against each limit), or null when it meets them.</summary>
    public static string? Misses(LoadLevel l, LatencySlo? slo)
    {
        if (l.Errors > 0) return $"{l.Errors} of {l.Requests + l.Errors} requests failed";
        if (slo is null) return null;
        var misses = new List<string>();
        if (slo.TtftMs is double t && l.TtftP99Ms > t) misses.Add($"TTFT p99 {l.TtftP99Ms:0.#} ms > {t} ms");
        if (slo.TpotMs is double p && l.TpotP99Ms > p) misses.Add($"TPOT p99 {l.TpotP99Ms:0.##} ms > {p} ms");
        if (slo.E2eMs is double e && l.E2eP99Ms > e) misses.Add($"E2E p99 {l.E2eP99Ms:0.#} ms > {e} ms");
        return misses.Count == 0 ? null : string.Join("; ", misses);
    }

    /// <summary>Lower is better: p99 TTFT (ttft), minus output tokens/s (throughput), $ per 1M output tokens (cost).</summary>
    static double Score(string target, LoadLevel l, double pricePerHour) => target switch
    {
        "ttft" => l.TtftP99Ms,
        "cost" => PricePerMillion(pricePerHour, l.OutputTokensPerSecond),
        _ => -l.OutputTokensPerSecond,
    };

    public static double PricePerMillion(double pricePerHour, double outputTokensPerSecond) =>
        outputTokensPerSecond > 0 ? pricePerHour / (outputTokensPerSecond * 3600 / 1e6) : double.PositiveInfinity;

    static RankedEntry Entry(RecommendationRequest request, Finalist f, LoadLevel l, Instance instance)
    {
        var c = f.Candidate;
        double perReplicaRps = request.Objectives is null ? l.RequestsPerSecond : l.Goodput;
        int replicas = request.RequestRate is double rate && perReplicaRps > 0 ? (int)Math.Ceiling(rate / perReplicaRps) : 1;
        var price = PricePerMillion(instance.PricePerHour, l.OutputTokensPerSecond);
        var blended = Pricing.BlendedPricePerMillionTokens(instance.PricePerHour, 0, Pricing.TotalTokensPerSecond(l.ItlP50Ms, l.Concurrency));
        List<ExpectedMetric> expected =
        [
            new("output_throughput", l.OutputTokensPerSecond, "mean", "tokens/s per instance", l.OutputTokensPerSecondCi95),
            new("per_user_throughput", l.PerUserTokensPerSecond, "mean", "tokens/s per request"),
            new("ttft", l.TtftP99Ms, "p99", "ms"),
            new("ttft", l.TtftP50Ms, "p50", "ms"),
            new("tpot", l.TpotP99Ms, "p99", "ms"),
            new("tpot", l.TpotP50Ms, "p50", "ms"),
            new("itl", l.ItlP99Ms, "p99", "ms"),
            new("e2e_latency", l.E2eP99Ms, "p99", "ms"),
            new("goodput", l.Goodput, "mean", "requests/s per instance", l.GoodputCi95),
            new("price_per_1m_output_tokens", Math.Round(price, 6), "measured", $"{instance.Currency} (from measured output throughput)"),
            new("blended_price_per_1m_tokens", Math.Round(blended, 6), "reference formula", $"{instance.Currency} (1/ITL p50 × concurrency, 3:1 input:output; for comparison only)"),
            new("cost_per_hour", Math.Round(instance.PricePerHour * replicas, 4), "list price", $"{instance.Currency}/h for {replicas} replica(s)"),
            new("kl_divergence", f.Quality.MeanKld, "mean", "nats/token"),
            new("same_top_token", f.Quality.SameTopToken, "rate", "fraction"),
            new("perplexity_increase", f.Quality.PerplexityIncreasePercent, "relative", "%"),
            new("model_size", f.Quality.Bytes, "bytes", "bytes"),
        ];
        if (l.AcceptanceRate is double a) expected.Add(new("acceptance_rate", Math.Round(a, 4), "mean", "fraction"));
        // a figure that cannot be computed is left out, not written as infinity: the reference formula's ITL p50 is 0 when
        // speculative tokens arrive in bursts
        expected.RemoveAll(m => !double.IsFinite(m.Value));
        var serve = $"--engine {c.Engine} --max-concurrent {l.Concurrency}{(c.Speculative ? $" --speculative {f.Load.Drafter}{(c.DraftLength == "auto" ? "" : $" --draft-tokens {c.DraftLength}")}" : "")}";
        return new RankedEntry(0, $"{c.Name}/c{l.Concurrency}/{instance.Name}", c, f.Load.ModelKey, f.Load.Drafter, l.Concurrency, instance.Name,
            instance.PricePerHour, replicas, expected, f.Quality, serve);
    }
}
