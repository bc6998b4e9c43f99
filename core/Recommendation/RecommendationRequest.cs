using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Sio.Benchmarking;
using Sio.Pipeline;

namespace Sio.Recommendation;

/// <summary>
/// A recommendation job: the user's model and data, the workload it will serve, what to optimize for, the latency and
/// quality it must keep, where it may run, and how long the search may take. The same record from `sio recommend`,
/// `POST /api/recommendations` and the console.
/// </summary>
public sealed record RecommendationRequest
{
    public const string TargetHelp = "ttft (lowest p99 time to first token), throughput (most output tokens/s per instance) or cost (lowest $ per 1M output tokens)";
    public static readonly string[] Targets = ["ttft", "throughput", "cost"];

    /// <summary>Anything `sio optimize` takes: a llama2.c .bin, a model folder, a .zip, an upload or an imported model.</summary>
    public string Model { get; init; } = "";
    public string? Tokenizer { get; init; }
    /// <summary>The user's data (JSONL or text): quality is measured on it, and its prompts are the workload unless lengths are given.</summary>
    public string Dataset { get; init; } = "";
    public string Target { get; init; } = "throughput";
    /// <summary>Prompt lengths of the workload ("550±150": a normal distribution, cut to the model's context); null: the dataset's own prompts.</summary>
    public string? InputTokens { get; init; }
    /// <summary>Answer lengths ("150±50"); each request asks for a length drawn from it. Default 64.</summary>
    public string? OutputTokens { get; init; }
    /// <summary>Latency objectives on p99s, e.g. "ttft=500ms,tpot=30ms" (each request must meet them to count as goodput).</summary>
    public string? Slo { get; init; }
    /// <summary>Quality budget against the float model, e.g. "kld=0.05,top1=0.9,ppl=+5%".</summary>
    public string? Quality { get; init; } = "kld=0.1,ppl=+10%";
    /// <summary>Instances from the price catalogue to consider (default: every one).</summary>
    public string[]? Instances { get; init; }
    /// <summary>Requests per second the deployment must sustain: sets the replica count of each entry (default: one replica).</summary>
    public double? RequestRate { get; init; }
    /// <summary>Wall-clock budget of the search, e.g. "30m", "90s", "1h".</summary>
    public string Budget { get; init; } = "30m";
    public SearchSpace Space { get; init; } = new();
    /// <summary>Requests per concurrency level and run of the load stage.</summary>
    public int Requests { get; init; } = 8;
    /// <summary>Runs of each load level (2 or more give 95 % confidence intervals).</summary>
    public int Runs { get; init; } = 2;
    /// <summary>Deploy the top entry when the search ends.</summary>
    public bool Deploy { get; init; }

    public static readonly JsonSerializerOptions Json = OptimizationRequest.Json;

    public TimeSpan BudgetTime => ParseDuration(Budget);
    public LatencySlo? Objectives => Slo is null ? null : LatencySlo.Parse(Slo);
    public QualityBudget QualityLimits => QualityBudget.Parse(Quality);
    public TokenLengths? InputLengths => InputTokens is null ? null : TokenLengths.Parse(InputTokens, "inputTokens");
    public TokenLengths OutputLengths => OutputTokens is null ? new TokenLengths(64, 0) : TokenLengths.Parse(OutputTokens, "outputTokens");

    /// <summary>Every problem with the request, by field; pure (references are checked by the validate step), so every
    /// mistake is named before any work starts.</summary>
    public Dictionary<string, string[]> Problems()
    {
        var p = new Dictionary<string, List<string>>();
        void Add(string field, string message) { if (!p.TryGetValue(field, out var l)) p[field] = l = []; l.Add(message); }
        void Check(string field, Action parse) { try { parse(); } catch (SioException e) { Add(field, e.Message); } }
        var asOptimization = new OptimizationRequest { Model = Model, Tokenizer = Tokenizer, Dataset = Dataset };
        foreach (var (field, messages) in asOptimization.Problems()) foreach (var m in messages) Add(field, m);
        if (!Targets.Contains(Target)) Add("target", $"target must be {TargetHelp}; got '{Target}'");
        Check("inputTokens", () => _ = InputLengths);
        Check("outputTokens", () => _ = OutputLengths);
        Check("slo", () => _ = Objectives);
        Check("quality", () => _ = QualityLimits);
        Check("budget", () => { if (BudgetTime < TimeSpan.FromSeconds(10) || BudgetTime > TimeSpan.FromDays(1)) throw new SioException($"budget must be from 10s to 24h, got {Budget}"); });
        if (Objectives is { } slo && OutputLengths is var o && InputLengths is var i)
        {
            if (slo.E2eMs is double e2e && slo.TtftMs is double ttft && ttft >= e2e) Add("slo", $"ttft {ttft} ms is not below e2e {e2e} ms: no request can meet both");
            if (slo.E2eMs is double e && slo.TpotMs is double tpot && (slo.TtftMs ?? 0) + tpot * (o.Mean - 1) > e)
                Add("slo", $"an answer of {o.Mean} tokens at tpot {tpot} ms takes {(slo.TtftMs ?? 0) + tpot * (o.Mean - 1):0} ms after ttft; it cannot meet e2e {e} ms");
        }
        if (RequestRate is double r && !(r > 0 && r < 1e6)) Add("requestRate", $"requestRate must be a positive number of requests per second, got {r}");
        if (Requests is < 1 or > 1000) Add("requests", $"requests must be from 1 to 1000, got {Requests}");
        if (Runs is < 1 or > 20) Add("runs", $"runs must be from 1 to 20, got {Runs}");
        foreach (var name in Instances ?? [])
            Check("instances", () => Pricing.Resolve(name, null));
        if (Instances is { Length: 0 }) Add("instances", "instances is empty; leave it out to consider every catalogue entry");
        foreach (var (field, message) in Space.Problems()) Add($"space.{field}", message);
        if (Space.Quantization.FirstOrDefault(q => q.Contains("-mixed")) is { } mixed && !p.ContainsKey("quality") && QualityLimits.MaxKld is null)
            Add("space.quantization", $"'{mixed}' chooses bits per layer within the quality budget's KL divergence; give quality kld=…");
        return p.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray());
    }

    /// <summary>The same request always gets the same id, so a duplicate start finds the search already there.</summary>
    public string InstanceId() =>
        "rec-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(this, Json))))[..20];

    /// <summary>"30m", "90s", "1h", "1h30m" or a bare number of seconds.</summary>
    public static TimeSpan ParseDuration(string text)
    {
        var t = text.Trim();
        if (double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out var bare)) return TimeSpan.FromSeconds(bare);
        var total = TimeSpan.Zero;
        int start = 0;
        for (int i = 0; i < t.Length; i++)
        {
            if (char.IsAsciiDigit(t[i]) || t[i] == '.') continue;
            if (!double.TryParse(t[start..i], NumberStyles.Float, CultureInfo.InvariantCulture, out var v)) throw new SioException($"budget: '{text}' is not a duration; write e.g. 30m, 90s or 1h30m");
            total += t[i] switch
            {
                'h' => TimeSpan.FromHours(v),
                'm' => TimeSpan.FromMinutes(v),
                's' => TimeSpan.FromSeconds(v),
                _ => throw new SioException($"budget: '{text}' is not a duration (unknown unit '{t[i]}'); write e.g. 30m, 90s or 1h30m"),
            };
            start = i + 1;
        }
        if (start != t.Length || t.Length == 0) throw new SioException($"budget: '{text}' is not a duration; write e.g. 30m, 90s or 1h30m");
        return total;
    }
}

/// <summary>A token-length distribution, "MEAN±SPREAD" (also "MEAN+-SPREAD" or "MEAN"): normal, with SPREAD its standard deviation.</summary>
public sealed record TokenLengths(int Mean, int Spread)
{
    public static TokenLengths Parse(string text, string field)
    {
        var parts = text.Replace("+-", "±").Split('±', StringSplitOptions.TrimEntries);
        if (parts.Length > 2 || !int.TryParse(parts[0], out var mean) || mean < 1 || mean > 1_000_000)
            throw new SioException($"{field}: '{text}' must be MEAN±SPREAD tokens, e.g. 550±150");
        int spread = 0;
        if (parts.Length == 2 && (!int.TryParse(parts[1], out spread) || spread < 0 || spread > mean))
            throw new SioException($"{field}: '{text}' has a spread that is not a number from 0 to the mean");
        return new TokenLengths(mean, spread);
    }

    /// <summary>A length drawn from the distribution (Box–Muller), at least 1 and at most <paramref name="max"/>.</summary>
    public int Draw(Random random, int max)
    {
        double u1 = 1 - random.NextDouble(), u2 = random.NextDouble();
        double z = Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
        return Math.Clamp((int)Math.Round(Mean + Spread * z), 1, max);
    }

    public override string ToString() => Spread == 0 ? $"{Mean}" : $"{Mean}±{Spread}";
}

/// <summary>The quality a recommendation must keep against the float model: mean KL divergence, same-top-token rate and perplexity increase.</summary>
public sealed record QualityBudget(double? MaxKld = null, double? MinSameTopToken = null, double? MaxPerplexityIncreasePercent = null)
{
    /// <summary>"kld=0.05,top1=0.9,ppl=+5%" (each optional; top1 also as a percentage, 90%).</summary>
    public static QualityBudget Parse(string? spec)
    {
        var q = new QualityBudget();
        if (string.IsNullOrWhiteSpace(spec) || spec == "none") return q;
        foreach (var part in spec.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var kv = part.Split('=', 2, StringSplitOptions.TrimEntries);
            if (kv.Length != 2) throw new SioException($"quality: '{part}' must be NAME=VALUE, e.g. kld=0.05");
            bool percent = kv[1].EndsWith('%');
            var number = kv[1].TrimEnd('%').TrimStart('+');
            if (!double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || v < 0 || double.IsInfinity(v))
                throw new SioException($"quality: '{part}' needs a number ≥ 0");
            q = kv[0] switch
            {
                "kld" => q with { MaxKld = v },
                "top1" => (percent ? v / 100 : v) is var t && t > 1 ? throw new SioException($"quality: '{part}': top1 is a rate from 0 to 1 (or 0% to 100%)") : q with { MinSameTopToken = t },
                "ppl" => q with { MaxPerplexityIncreasePercent = v },
                _ => throw new SioException($"quality: unknown limit '{kv[0]}'; use kld, top1 or ppl"),
            };
        }
        return q;
    }

    /// <summary>Why a score breaks the budget (empty when it keeps it).</summary>
    public IEnumerable<string> Failures(QualityScore s)
    {
        if (MaxKld is double k && !(s.MeanKld <= k)) yield return $"KL divergence {s.MeanKld:G3} exceeds {k}";
        if (MinSameTopToken is double t && !(s.SameTopToken >= t)) yield return $"same top token {100 * s.SameTopToken:0.#} % is under {100 * t:0.#} %";
        if (MaxPerplexityIncreasePercent is double p && !(s.PerplexityIncreasePercent <= p)) yield return $"perplexity +{s.PerplexityIncreasePercent:0.##} % exceeds +{p} %";
    }

    public override string ToString() => string.Join(", ", new[] { MaxKld is { } k ? $"KLD ≤ {k}" : null, MinSameTopToken is { } t ? $"same top token ≥ {100 * t:0.#} %" : null,
        MaxPerplexityIncreasePercent is { } p ? $"perplexity ≤ +{p} %" : null }.OfType<string>()) is { Length: > 0 } s ? s : "none";
}
