using System.Text;

namespace Sio.Recommendation;

/// <summary>The recommendation as Markdown: the ranked table, the Pareto front and why each other candidate lost.</summary>
public static class RecommendationReport
{
    public static string Markdown(Recommendation r)
    {
        var s = new StringBuilder();
        s.AppendLine($"# Recommendation {r.RunId}").AppendLine();
        s.AppendLine($"Target: **{r.Target}**. Workload: {r.Workload}. Latency objectives (p99): {r.Slo}. Quality budget: {r.Quality}.");
        s.AppendLine($"Measured on: {r.MeasuredOn}. Search took {r.Seconds:0} s of a {r.Budget} budget.").AppendLine();
        if (r.Ranked.Count == 0) s.AppendLine("**No configuration met the objectives.** See below for why each candidate lost.").AppendLine();
        else
        {
            s.AppendLine("| # | configuration | concurrency | instance × replicas | output tok/s (±95 %) | TTFT p99 ms | TPOT p99 ms | $ / 1M output tokens | KLD | size MB |");
            s.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
            foreach (var e in r.Ranked)
            {
                var t = e.Metric("output_throughput")!;
                s.AppendLine($"| {e.Rank} | {e.Candidate.Name} | {e.Concurrency} | {e.Instance} × {e.Replicas} | {t.Value:0.#}{(t.Ci95 is { } ci ? $" ± {ci:0.#}" : "")} | " +
                    $"{e.Metric("ttft")!.Value:0.#} | {e.Metric("tpot")!.Value:0.##} | {e.Metric("price_per_1m_output_tokens")?.Value:G4} | {e.Quality.MeanKld:G3} | {e.Quality.Bytes / 1e6:0.##} |");
            }
            s.AppendLine().AppendLine($"Serve #1: `sio serve MODEL {r.Ranked[0].Serve}`; deploy any entry with `POST /api/deployments {{\"runId\": \"{r.RunId}\", \"variant\": \"VARIANT\"}}`.").AppendLine();
        }
        var front = r.Pareto.Where(p => p.OnFront).OrderBy(p => p.PerUserTokensPerSecond).ToList();
        if (front.Count > 0)
        {
            s.AppendLine("## Pareto front (tokens/s per user against tokens/s per instance)").AppendLine();
            foreach (var p in front) s.AppendLine($"- {p.Candidate} at concurrency {p.Concurrency}: {p.PerUserTokensPerSecond:0.#} tok/s per user, {p.PerInstanceTokensPerSecond:0.#} per instance");
            s.AppendLine();
        }
        if (r.Discarded.Count > 0)
        {
            s.AppendLine("## Not recommended").AppendLine();
            foreach (var d in r.Discarded) s.AppendLine($"- {d.Candidate} ({d.Stage}): {d.Reason}");
            s.AppendLine();
        }
        if (r.InstancesNotMeasured.Count > 0)
        {
            s.AppendLine("## Instances not measured").AppendLine();
            foreach (var i in r.InstancesNotMeasured) s.AppendLine($"- {i}");
        }
        return s.ToString();
    }
}
