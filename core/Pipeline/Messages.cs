namespace Sio.Pipeline;

// The inputs and outputs that travel between the orchestrator and its activities (JSON, small).

/// <summary>A content-addressed model folder in the artifacts container (artifacts/models/KEY).</summary>
public sealed record ModelArtifact(string Key, string Name, string Dtype, long Bytes, bool Reused);

public sealed record ImportInput(string Model, string? Tokenizer);
/// <summary>The user's dataset, staged and split: even records calibrate (AWQ, the datastore drafter), odd records measure, so no variant is judged on data it was fitted to.</summary>
public sealed record StagedDataset(string Key, string Sha256, int Records, string CalibrationKey, string EvaluationKey);
/// <param name="Config">The quantization pass's config, as <see cref="Recipe.Parse"/> derives it from the recipe (no calibration file yet: the step supplies the dataset's calibration half).</param>
public sealed record QuantizeInput(ModelArtifact Model, Quantization.QuantizationConfig Config, StagedDataset Dataset, string Name);
public sealed record CompileInput(ModelArtifact Model, string Target, string Name);
/// <param name="Reference">The baseline a variant's distributions are compared with (KL divergence, same top token); null for the baseline itself.</param>
public sealed record BenchmarkInput(string Variant, ModelArtifact Model, string Drafter, StagedDataset Dataset, BenchmarkSettings Settings, string? Instance, double? PricePerHour,
    ModelArtifact? Reference = null);

/// <summary>One variant measured: throughput and latency per concurrency level, price and quality.</summary>
public sealed record VariantMeasurement(string Variant, ModelArtifact Model, string Drafter, IReadOnlyList<LevelMeasurement> Levels,
    double Perplexity, double? AcceptanceRate, double? MeanAcceptedLength, string Instance, double PricePerHour, bool Reused,
    int? ExactChecked = null, int? ExactOutputs = null, string? Worker = null, BaselineDivergence? FromBaseline = null, ServingSettings? Serving = null)
{
    /// <summary>The worker process that measured it (host/pid): with several workers on one task hub, the fan-out is spread over them.</summary>
    public static string ThisWorker => $"{Environment.MachineName}/{Environment.ProcessId}";

    /// <summary>Speculative variants: of <see cref="ExactChecked"/> evaluation prompts decoded greedily with and without
    /// the drafter, how many gave the same tokens (null for variants without a drafter).</summary>
    public LevelMeasurement? At(int concurrency) => Levels.FirstOrDefault(l => l.Concurrency == concurrency);
    public double CheapestPricePerMillionTokens => Levels.Where(l => double.IsFinite(l.BlendedPricePerMillionTokens) && l.BlendedPricePerMillionTokens > 0)
        .Select(l => l.BlendedPricePerMillionTokens).DefaultIfEmpty(double.PositiveInfinity).Min();
}

/// <summary>Serving settings a measured configuration was measured with (a recommendation's entries): the engine, the
/// concurrency limit and a fixed draft length; null fields keep the server's own settings.</summary>
public sealed record ServingSettings(string? Engine = null, int? MaxConcurrent = null, int? DraftTokens = null);

/// <summary>A variant's next-token distributions against the baseline's on the evaluation records (llama.cpp's KLD statistics).</summary>
public sealed record BaselineDivergence(double MeanKld, double P99Kld, double SameTopToken, long Tokens);

/// <summary>
/// One concurrency level. TPOT (time per output token after the first, p50) is the latency that speculative decoding
/// changes: its tokens arrive in bursts, so the p50 gap between tokens (ITL) can be near zero. The price comes from the
/// measured output throughput (tokens actually delivered per second of the level), not from the ITL.
/// </summary>
public sealed record LevelMeasurement(int Concurrency, double OutputTokensPerSecond, double TtftP50Ms, double ItlP50Ms, double ItlP90Ms,
    double BlendedPricePerMillionTokens, int Errors, double TpotP50Ms = 0);

public sealed record PublishInput(string RunId, OptimizationRequest Request, IReadOnlyList<VariantMeasurement> Variants, GateDecision Decision);
public sealed record Published(string Report, string? DeploymentManifest);

/// <summary>What a run ends with.</summary>
public sealed record OptimizationResult(string RunId, bool Passed, string? Chosen, string Report, string? DeploymentManifest, bool Deployed,
    IReadOnlyList<string> Reasons);

/// <summary>The custom status of a run: where it is and, when it failed, where and why.</summary>
public sealed record PipelineStatus(string Step, int StepNumber, int Steps, string? Detail = null, string? FailedStep = null, string? Error = null,
    IReadOnlyList<StepTime>? Done = null, IReadOnlyList<RunEvent>? Events = null);

/// <summary>A finished step of a run, when it started and how long it took (orchestration time: from the step's start to the next's).</summary>
public sealed record StepTime(int Number, string Step, double Seconds, DateTime? Started = null);

/// <summary>One line of a run's event log (UTC, the orchestration's clock).</summary>
public sealed record RunEvent(DateTime At, string Message);
