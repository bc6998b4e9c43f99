namespace Sio.Recommendation;

/// <summary>
/// What a recommendation job returns: entries ranked for the target (each a deployable configuration with its expected
/// performance), the Pareto front of tokens/s per user against tokens/s per instance, every candidate that lost and why,
/// and the instances that could not be measured here.
/// </summary>
public sealed record Recommendation(string RunId, string Target, string Workload, string Slo, string Quality, IReadOnlyList<RankedEntry> Ranked,
    IReadOnlyList<ParetoPoint> Pareto, IReadOnlyList<Discarded> Discarded, IReadOnlyList<string> InstancesNotMeasured, string MeasuredOn,
    double Seconds, string Budget, DateTime CreatedUtc);

/// <param name="Variant">The entry's name in the run's report (deploy it with POST /api/deployments {"runId", "variant"}).</param>
/// <param name="Serve">The `sio serve` settings that reproduce it.</param>
/// <param name="Drafter">The drafter as served: a datastore is the artifact the search built and measured.</param>
public sealed record RankedEntry(int Rank, string Variant, Candidate Candidate, string ModelKey, string Drafter, int Concurrency, string Instance, double PricePerHour, int Replicas,
    IReadOnlyList<ExpectedMetric> Expected, QualityScore Quality, string Serve)
{
    public ExpectedMetric? Metric(string name) => Expected.FirstOrDefault(m => m.Metric == name);
}

/// <summary>One expected figure: metric, value, statistic (mean, p50, p99), unit, and a 95 % confidence interval's half-width over runs where there is one.</summary>
public sealed record ExpectedMetric(string Metric, double Value, string Statistic, string Unit, double? Ci95 = null);

/// <summary>A candidate that lost: the stage it stopped at (build, quality, screen, exactness, load, slo, budget) and why.</summary>
public sealed record Discarded(string Candidate, string Stage, string Reason);

/// <summary>A candidate at one concurrency limit: its tokens/s per user and per instance, and whether no other point beats it on both.</summary>
public sealed record ParetoPoint(string Candidate, int Concurrency, double PerUserTokensPerSecond, double PerInstanceTokensPerSecond, bool OnFront);

/// <summary>What the orchestration returns (the recommendation itself is published as reports/RUN/recommendation.json).</summary>
public sealed record RecommendationResult(string RunId, string? Top, int Entries, string Report, bool Deployed);
