using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sio.Pipeline;

/// <summary>
/// What to optimize and how to judge it. Model, tokenizer and dataset are references: "uploads/NAME"
/// (an object in the store's uploads container) or, on a self-hosted machine, a local path.
/// </summary>
public sealed record OptimizationRequest
{
    /// <summary>A llama2.c .bin, a .zip of a Hugging Face or sio model folder, a model folder, anything `sio import` reads, or an imported model (artifacts/models/KEY).</summary>
    public string Model { get; init; } = "";
    /// <summary>A tokenizer that overrides the one found beside the model.</summary>
    public string? Tokenizer { get; init; }
    /// <summary>Techniques in order, comma-separated: awq-int4[:gN], rtn-int4[:gN], compile[:TARGET], speculative:DRAFTER.</summary>
    public string Recipe { get; init; } = Pipeline.Recipe.Default;
    /// <summary>The user's own data (JSONL or text): AWQ calibration, benchmark prompts and the perplexity check.</summary>
    public string Dataset { get; init; } = "";
    public QualityGates Gates { get; init; } = new();
    public BenchmarkSettings Benchmark { get; init; } = new();
    /// <summary>An instance from the price catalogue (default: its first entry).</summary>
    public string? Instance { get; init; }
    /// <summary>A price per hour that overrides the catalogue's.</summary>
    public double? PricePerHour { get; init; }
    /// <summary>Deploy the chosen variant when it passes the gates.</summary>
    public bool Deploy { get; init; } = true;
    /// <summary>How the gate chooses among the variants that pass: stack (the most techniques stacked: the recipe as
    /// asked; the default, null), latency (lowest time per output token at concurrency 1), throughput (most output
    /// tokens/s at any level) or cost (lowest $ per 1M tokens).</summary>
    public string? Target { get; init; }

    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    /// <summary>Every problem with the request, by field (empty when it is valid). Pure: references are checked by the validate step.</summary>
    public Dictionary<string, string[]> Problems()
    {
        var p = new Dictionary<string, List<string>>();
        void Add(string field, string message) { if (!p.TryGetValue(field, out var l)) p[field] = l = []; l.Add(message); }
        void Ref(string field, string? value, bool required)
        {
            if (string.IsNullOrWhiteSpace(value)) { if (required) Add(field, $"{field} is required"); return; }
            if (value.StartsWith(Artifacts.Containers.Artifacts + "/") && ArtifactRepository.ArtifactKey(value) is null)
                Add(field, $"{field}: '{value}' is not an imported model (artifacts/models/KEY)");
            if (value.StartsWith(Artifacts.Containers.Uploads + "/"))
                try { Artifacts.Containers.CheckName(value[(Artifacts.Containers.Uploads.Length + 1)..], field); }
                catch (SioException e) { Add(field, e.Message); }
        }
        Ref("model", Model, true);
        Ref("tokenizer", Tokenizer, false);
        Ref("dataset", Dataset, true);
        try { Pipeline.Recipe.Parse(Recipe); } catch (SioException e) { Add("recipe", e.Message); }
        foreach (var (field, message) in Gates.Problems()) Add($"gates.{field}", message);
        foreach (var (field, message) in Benchmark.Problems()) Add($"benchmark.{field}", message);
        if (PricePerHour is <= 0) Add("pricePerHour", $"pricePerHour must be > 0, got {PricePerHour}");
        if (Target is not null && !QualityGate.Targets.Contains(Target)) Add("target", $"target must be one of {string.Join(", ", QualityGate.Targets)}, got '{Target}'");
        if (Instance is not null && PricePerHour is null)
            try { Benchmarking.Pricing.Resolve(Instance, null); } catch (SioException e) { Add("instance", e.Message); }
        return p.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray());
    }

    /// <summary>The same request always gets the same id, so a duplicate trigger finds the run already there.</summary>
    public string InstanceId() =>
        "opt-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(this, Json))))[..20];
}

/// <summary>The quality and cost gate a variant must pass to be deployed.</summary>
public sealed record QualityGates
{
    /// <summary>Most perplexity increase over the baseline on the dataset, in percent.</summary>
    public double? MaxPerplexityIncreasePercent { get; init; } = 10;
    /// <summary>Least decode speedup over the baseline at concurrency 1 (p50 time per output token).</summary>
    public double? MinSpeedup { get; init; } = 1.0;
    /// <summary>Highest blended $ per 1M tokens (at the variant's cheapest concurrency level).</summary>
    public double? MaxPricePerMillionTokens { get; init; }
    /// <summary>Most mean KL divergence (nats per token) of the variant's next-token distributions from the baseline's, on the dataset.</summary>
    public double? MaxKld { get; init; }
    /// <summary>Least rate (0 to 1) at which the variant and the baseline put the same token on top.</summary>
    public double? MinSameTopToken { get; init; }

    public IEnumerable<(string, string)> Problems()
    {
        if (MaxKld is < 0) yield return ("maxKld", "must be ≥ 0");
        if (MinSameTopToken is < 0 or > 1) yield return ("minSameTopToken", "must be between 0 and 1");
        if (MaxPerplexityIncreasePercent is < 0) yield return ("maxPerplexityIncreasePercent", "must be ≥ 0");
        if (MinSpeedup is <= 0) yield return ("minSpeedup", "must be > 0");
        if (MaxPricePerMillionTokens is <= 0) yield return ("maxPricePerMillionTokens", "must be > 0");
    }
}

/// <summary>How each variant is measured (small defaults: a pipeline run measures several variants).</summary>
public sealed record BenchmarkSettings
{
    public int[] Concurrency { get; init; } = [1, 4];
    public int Requests { get; init; } = 8;
    public int MaxNewTokens { get; init; } = 64;
    public int PromptTokensMin { get; init; } = 8;
    /// <summary>Records longer than this are skipped; longer prompts that are used are cut to leave room for the answer.</summary>
    public int PromptTokensMax { get; init; } = 100_000;
    /// <summary>Dataset records scored for perplexity.</summary>
    public int PerplexityRecords { get; init; } = 32;

    public IEnumerable<(string, string)> Problems()
    {
        if (Concurrency.Length == 0 || Concurrency.Any(c => c is < 1 or > 256)) yield return ("concurrency", "must list levels from 1 to 256");
        if (Requests is < 1 or > 10_000) yield return ("requests", "must be from 1 to 10000");
        if (MaxNewTokens is < 1 or > 4096) yield return ("maxNewTokens", "must be from 1 to 4096");
        if (PromptTokensMin < 1 || PromptTokensMax < PromptTokensMin) yield return ("promptTokensMin", "must satisfy 1 ≤ promptTokensMin ≤ promptTokensMax");
        if (PerplexityRecords is < 1 or > 100_000) yield return ("perplexityRecords", "must be from 1 to 100000");
    }
}
