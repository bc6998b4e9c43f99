using Sio.Pipeline;

namespace Sio.Recommendation;

// The inputs and outputs that travel between the recommendation's orchestrator and its activities (JSON, small).

/// <summary>A model's next-token distributions against the float model's on the evaluation records.</summary>
public sealed record QualityScore(double MeanKld, double P99Kld, double SameTopToken, double Perplexity, double BaselinePerplexity, long Tokens, long Bytes)
{
    public double PerplexityIncreasePercent => BaselinePerplexity > 0 ? Math.Round((Perplexity / BaselinePerplexity - 1) * 100, 3) : 0;
}

/// <summary>A mixed-precision search of <paramref name="Model"/> within <paramref name="MaxKld"/> (the evaluation half's first records).</summary>
public sealed record MixedInput(ModelArtifact Model, Quantization.QuantizationConfig Config, StagedDataset Dataset, string Name, double MaxKld);

public sealed record ScoreInput(ModelArtifact Model, ModelArtifact Baseline, StagedDataset Dataset);

/// <summary>How the load stage measures: the workload's shape, levels, runs and objectives.</summary>
public sealed record Workload(int[] Concurrency, int Requests, int Runs, TokenLengths Output, TokenLengths? Input, string? Slo, int Seed = 1);

public sealed record MeasureInput(Candidate Candidate, ModelArtifact Model, StagedDataset Dataset, Workload Workload);

/// <summary>One concurrency limit of a candidate, measured: the load benchmark's statistics (p99s pooled over every
/// request of every run; throughput and goodput as means over runs with 95 % intervals).</summary>
public sealed record LoadLevel(int Concurrency, int Requests, int Errors, double OutputTokensPerSecond, double? OutputTokensPerSecondCi95,
    double TtftP50Ms, double TtftP99Ms, double TpotP50Ms, double TpotP99Ms, double ItlP50Ms, double ItlP99Ms, double E2eP50Ms, double E2eP99Ms,
    double RequestsPerSecond, double Goodput, double? GoodputCi95, int GoodRequests, double PerUserTokensPerSecond, double? AcceptanceRate);

/// <summary>A candidate measured under load (or, in the screen, at concurrency 1), with whether its speculative output was
/// exact. <see cref="Drafter"/> is the drafter as served (a datastore resolved to its artifact, artifacts/datastores/KEY.jsonl).</summary>
public sealed record CandidateMeasurement(Candidate Candidate, string ModelKey, IReadOnlyList<LoadLevel> Levels, double Seconds, bool Reused,
    int? ExactChecked = null, int? ExactOutputs = null, string? Error = null, string Drafter = "none")
{
    public LoadLevel? At(int concurrency) => Levels.FirstOrDefault(l => l.Concurrency == concurrency);
}
