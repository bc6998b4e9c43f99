using System.Text;
using System.Text.Json;
using Sio.Artifacts;
using Sio.Evaluation;
using Sio.Generation;
using Sio.Models;

namespace Sio.Benchmarking;

/// <summary>A variant's sweep: a model (and drafter) measured at every concurrency level.</summary>
public sealed record VariantResult(string Name, string Model, string Drafter, IReadOnlyList<LevelResult> Levels);

/// <summary>A serving configuration taken from the sweep.</summary>
/// <param name="PricePerMillionTokens">From the measured output throughput (3:1 input:output blend).</param>
public sealed record Preset(string Variant, int Concurrency, double ItlP50Ms, double TtftP50Ms, double PricePerMillionTokens, double OutputTokensPerSecond, double? RequestRate = null);

/// <summary>
/// Runs the sweep for a model (and its baseline) on the user's data and writes report.json,
/// report.md and PNG charts into a folder built beside the destination and renamed into place.
/// </summary>
public static class BenchmarkReport
{
    public sealed record Request(string Model, string Dataset, LoadBenchmarkConfig Config, string? Baseline, Instance Instance, double Discount, double? LatencyBoundMs);

    public static string Run(Request request, string outDir, IProgress<string>? progress = null)
    {
        var config = request.Config.Validate();
        if (request.Discount is < 0 or >= 1) throw new SioException($"--discount must be in [0, 1), got {request.Discount}");
        if (request.LatencyBoundMs is <= 0) throw new SioException($"--latency-bound-ms must be > 0, got {request.LatencyBoundMs}");
        if (request.Instance.PricePerHour <= 0) throw new SioException($"--price-per-hour must be > 0, got {request.Instance.PricePerHour}");
        using var output = OutputFolder.Begin(outDir, [request.Model, request.Dataset, request.Baseline], d =>
        {
            if (File.Exists(d) || (Directory.Exists(d) && Directory.EnumerateFileSystemEntries(d).Any() && !File.Exists(Path.Combine(d, "report.json"))))
                throw SioException.InFile(d, "the output folder exists and is not a sio benchmark report; choose another --out or empty it");
        });
        outDir = output.Destination;
        var data = DatasetReader.Read(request.Dataset);

        using var model = Model.Load(request.Model, config.ModelOptions.ForDrafter(config.Speculative));
        var prompts = LoadBenchmark.Prompts(model, data, config);
        var variants = new List<VariantResult>();
        Model? baseline = null;
        try
        {
            if (request.Baseline is not null && config.Endpoint is not null) throw new SioException("--baseline runs in-process; measure the endpoint and the baseline in two runs");
            if (request.Baseline is not null)
            {
                baseline = Model.Load(request.Baseline, config.ModelOptions);
                if (baseline.Tokenizer.Fingerprint() != model.Tokenizer.Fingerprint())
                    throw SioException.InFile(request.Baseline, "the baseline's vocabulary differs from the model's; quality needs the same token ids");
                progress?.Report("baseline sweep");
                var plain = config with { Speculative = new Speculative.SpeculativeOptions() };
                variants.Add(new("baseline", Path.GetFullPath(request.Baseline), "none", LoadBenchmark.Sweep(baseline, prompts, plain, request.Instance, request.Discount, progress)));
            }
            var name = Path.GetFileName(Path.GetFullPath(request.Model).TrimEnd('/')) + (config.Speculative.Enabled ? $"+{config.Speculative.Drafter.Split(':')[0]}" : "");
            variants.Add(new(name, Path.GetFullPath(request.Model), config.Speculative.Drafter, LoadBenchmark.Sweep(model, prompts, config, request.Instance, request.Discount, progress)));
            QualityResult? quality = null;
            if (baseline is not null)
            {
                progress?.Report("quality against the baseline");
                quality = QualityComparison.Compare(model, baseline, prompts, Math.Min(config.MaxNewTokens, 64));
            }
            var presets = Presets(variants, request.LatencyBoundMs);

            var temp = output.Temp;
            var json = ReportJson(request, data, prompts, model, variants, quality, presets);
            File.WriteAllText(Path.Combine(temp, "report.json"), json);
            File.WriteAllText(Path.Combine(temp, "report.md"), Markdown(request, data, prompts, variants, quality, presets));
            Charts.Write(temp, variants);
            output.Commit();
            return outDir;
        }
        finally
        {
            baseline?.Dispose();
        }
    }

    /// <summary>Lowest latency (p50 ITL), lowest cost ($/1M tokens) and balanced (lowest cost with p50 ITL under the bound; default twice the lowest).</summary>
    public static Dictionary<string, Preset> Presets(IReadOnlyList<VariantResult> variants, double? latencyBoundMs)
    {
        var all = variants.SelectMany(v => v.Levels.Where(l => l.Requests > 0 && l.ItlMs.P50 > 0 && double.IsFinite(l.PricePerMillionTokens)).Select(l => (Variant: v.Name, Level: l))).ToList();
        if (all.Count == 0) return new();
        Preset P((string Variant, LevelResult Level) x) => new(x.Variant, x.Level.Concurrency, x.Level.ItlMs.P50, x.Level.TtftMs.P50, x.Level.PricePerMillionTokens, x.Level.OutputTokensPerSecond, x.Level.RequestRate);
        var fastest = all.MinBy(x => (x.Level.ItlMs.P50, x.Level.E2eMs.P50));
        var cheapest = all.MinBy(x => x.Level.PricePerMillionTokens);
        double bound = latencyBoundMs ?? 2 * fastest.Level.ItlMs.P50;
        var presets = new Dictionary<string, Preset> { ["lowest_latency"] = P(fastest), ["lowest_cost"] = P(cheapest) };
        var underBound = all.Where(x => x.Level.ItlMs.P50 <= bound).ToList();
        if (underBound.Count > 0) presets["balanced"] = P(underBound.MinBy(x => x.Level.PricePerMillionTokens));
        return presets;
    }

    static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };

    static object LevelJson(LevelResult l) => new
    {
        concurrency = l.Concurrency,
        request_rate = l.RequestRate,
        runs = l.Runs,
        requests = l.Requests,
        errors = l.Errors,
        wall_seconds = l.WallSeconds,
        ttft_ms = l.TtftMs,
        itl_ms = l.ItlMs,
        e2e_ms = l.E2eMs,
        tpot_ms = l.TpotMs,
        queue_ms = l.QueueMs,
        output_tokens_per_second = l.OutputTokensPerSecond,
        output_tokens_per_second_ci95 = l.OutputTokensPerSecondCi95,
        good_requests = l.GoodRequests,
        goodput = l.Goodput,
        goodput_ci95 = l.GoodputCi95,
        price_per_million_tokens = double.IsFinite(l.PricePerMillionTokens) ? l.PricePerMillionTokens : (double?)null,
        output_tokens_per_second_per_request = l.OutputTokensPerSecondPerRequest,
        requests_per_second = l.RequestsPerSecond,
        total_tokens_per_second = l.TotalTokensPerSecond,
        blended_price_per_million_tokens = double.IsFinite(l.BlendedPricePerMillionTokens) ? l.BlendedPricePerMillionTokens : (double?)null, // null: no token timings at this level
        acceptance_rate = l.AcceptanceRate,
        mean_accepted_length = l.MeanAcceptedLength,
        error_messages = l.ErrorMessages,
    };

    static string ReportJson(Request r, Dataset data, BenchmarkPrompts prompts, Model model, IReadOnlyList<VariantResult> variants, QualityResult? quality, Dictionary<string, Preset> presets)
    {
        var main = variants[^1];
        return JsonSerializer.Serialize(new
        {
            machine = new
            {
                cores = Environment.ProcessorCount,
                os = System.Runtime.InteropServices.RuntimeInformation.OSDescription,
                hardware = Compilation.HardwareFingerprint.Description,
            },
            versions = new { sio = typeof(BenchmarkReport).Assembly.GetName().Version?.ToString(), onnxruntime = Compilation.Compiler.OrtVersion, dotnet = Environment.Version.ToString() },
            dataset = new { path = Path.GetFullPath(data.Path), sha256 = data.Sha256, rows_used = prompts.Prompts.Count, rows_skipped = prompts.SkippedRows, rows_out_of_length_range = prompts.OutOfRange },
            model = new { path = main.Model, name = main.Name, dtype = model.Manifest.Dtype, steps = model.Manifest.Steps, drafter = main.Drafter },
            config = new
            {
                concurrency = r.Config.Concurrency, max_new_tokens = r.Config.MaxNewTokens, requests_per_level = r.Config.DurationSeconds is null ? r.Config.Requests : (int?)null,
                duration_seconds = r.Config.DurationSeconds, prompt_tokens_min = r.Config.PromptTokensMin, prompt_tokens_max = r.Config.PromptTokensMax,
                speculative = r.Config.Speculative.Drafter, draft_tokens = r.Config.Speculative.DraftTokens?.ToString() ?? "auto",
                mode = r.Config.Endpoint is null ? "in-process" : "http", endpoint = r.Config.Endpoint?.ToString(),
                load = r.Config.OpenLoop ? "open-loop" : "closed-loop", request_rates = r.Config.RequestRates, burstiness = r.Config.OpenLoop ? r.Config.Burstiness : (double?)null,
                max_batch = r.Config.OpenLoop && r.Config.Endpoint is null ? r.Config.MaxBatch : (int?)null, runs = r.Config.Runs,
                slo = r.Config.Slo is { } slo ? new { ttft_ms = slo.TtftMs, tpot_ms = slo.TpotMs, e2e_ms = slo.E2eMs } : null,
            },
            levels = main.Levels.Select(LevelJson),
            instance = new { name = r.Instance.Name, price_per_hour = r.Instance.PricePerHour, discount = r.Discount, currency = r.Instance.Currency, source = r.Instance.Source, as_of = r.Instance.AsOf },
            price_formula = "price_per_million_tokens: (1 − discount) × $/hour ÷ (measured output tokens/s × 3600 ÷ 10^6) ÷ 4 (a 3:1 input:output blend); " +
                "blended_price_per_million_tokens, the reference product's formula, for comparison only: the same with total throughput = (1 / p50 ITL) × concurrency",
            baseline = variants.Count > 1 ? new { path = variants[0].Model, levels = variants[0].Levels.Select(LevelJson) } : null,
            quality,
            presets,
            charts = Charts.All,
        }, Json);
    }

    static string Markdown(Request r, Dataset data, BenchmarkPrompts prompts, IReadOnlyList<VariantResult> variants, QualityResult? quality, Dictionary<string, Preset> presets)
    {
        var md = new StringBuilder();
        md.AppendLine($"# sio benchmark: {variants[^1].Name}");
        md.AppendLine();
        md.AppendLine($"Machine: {Compilation.HardwareFingerprint.Description}. ONNX Runtime {Compilation.Compiler.OrtVersion}.");
        md.AppendLine($"Dataset: `{Path.GetFileName(data.Path)}` (sha256 {data.Sha256[..12]}…): {prompts.Prompts.Count} prompts used, {prompts.SkippedRows} rows unusable, {prompts.OutOfRange} outside {r.Config.PromptTokensMin}–{r.Config.PromptTokensMax} tokens.");
        var c = r.Config;
        md.AppendLine($"Up to {c.MaxNewTokens} new tokens per request; " + (c.OpenLoop
            ? $"open loop: arrivals at each request rate on a seeded gamma schedule (burstiness {c.Burstiness}{(c.Burstiness == 1 ? ", Poisson" : "")}), {c.Requests} requests per level{(c.Endpoint is null ? $", sio's batching engine with {c.MaxBatch} rows" : "")}; latencies from each request's arrival"
            : $"closed loop; {(c.DurationSeconds is double d ? $"{d} s" : $"{c.Requests} requests")} per level") +
            $"{(c.Runs > 1 ? $"; {c.Runs} runs per level (percentiles over every request; ± is the 95 % confidence interval of the runs' mean)" : "")}.");
        md.AppendLine(c.Slo is { } slo ? $"Goodput: requests per second that met every objective ({slo})." : "Goodput: every answered request (no --slo given).");
        md.AppendLine("$/1M tokens from the measured output throughput (3:1 input:output blend); the reference product's formula (total tok/s = 1/ITL × concurrency) is shown apart for comparison.");
        md.AppendLine($"Price: {r.Instance.Name} at ${r.Instance.PricePerHour}/hour{(r.Discount > 0 ? $", {r.Discount:P0} discount" : "")} ({r.Instance.Source}, {r.Instance.AsOf}).");
        md.AppendLine();
        foreach (var v in variants)
        {
            md.AppendLine($"## {v.Name}{(v.Drafter != "none" ? $" (speculative: {v.Drafter})" : "")}");
            md.AppendLine();
            md.AppendLine($"| {(c.OpenLoop ? "request rate" : "concurrency")} | requests | errors | TTFT p50 / p90 / p99 ms | TPOT p50 / p99 ms | ITL p50 / p99 ms | E2E p50 / p99 ms | queue p50 / p99 ms | output tok/s | goodput req/s | $/1M tokens | $/1M (1/ITL × c formula) | acceptance |");
            md.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
            foreach (var l in v.Levels)
            {
                var tpot = l.TpotMs ?? Percentiles.Empty;
                md.AppendLine($"| {(l.RequestRate is double rate ? $"{rate:0.###}/s" : l.Concurrency.ToString())} | {l.Requests} | {l.Errors} | {l.TtftMs.P50:F1} / {l.TtftMs.P90:F1} / {l.TtftMs.P99:F1} | {tpot.P50:F2} / {tpot.P99:F2} | {l.ItlMs.P50:F2} / {l.ItlMs.P99:F2} | {l.E2eMs.P50:F0} / {l.E2eMs.P99:F0} | {(l.QueueMs is { } q ? $"{q.P50:F1} / {q.P99:F1}" : "—")} | " +
                    $"{l.OutputTokensPerSecond:F1}{(l.OutputTokensPerSecondCi95 is double ci ? $" ± {ci:F1}" : "")} | {l.Goodput:F2}{(l.GoodputCi95 is double gci ? $" ± {gci:F2}" : "")} | {l.PricePerMillionTokens:G4} | {l.BlendedPricePerMillionTokens:G4} | {(l.AcceptanceRate is double a ? a.ToString("P1") : "—")} |");
            }
            md.AppendLine();
        }
        if (quality is not null)
        {
            md.AppendLine("## Quality against the baseline");
            md.AppendLine();
            md.AppendLine($"- Greedy token agreement {quality.TokenAgreement:P1}, identical answers {quality.ExactMatch:P0} ({quality.Prompts} prompts{(quality.EmptyBoth > 0 ? $"; {quality.EmptyBoth} that both models ended at once left out" : "")}).");
            if (quality.MeanKld is double k)
                md.AppendLine($"- KL divergence from the baseline's next-token distributions{(quality.ReferenceRecords > 0 ? " on the reference responses" : " on the dataset's texts")}: mean {k:G4}, p99 {quality.P99Kld:G4} nats per token; same top token {quality.SameTopToken:P2}.");
            if (quality.Perplexity is double p) md.AppendLine($"- Perplexity of the {quality.ReferenceRecords} reference responses: {p:F4} (baseline {quality.BaselinePerplexity:F4}).");
            if (quality.RougeL is double rl) md.AppendLine($"- ROUGE-L F1 against the references: {rl:F4} (baseline {quality.BaselineRougeL:F4}).");
            md.AppendLine();
        }
        md.AppendLine("## Preset serving configurations");
        md.AppendLine();
        md.AppendLine("| preset | variant | level | ITL p50 ms | TTFT p50 ms | $/1M tokens | output tok/s |");
        md.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var (k, p) in presets)
            md.AppendLine($"| {k.Replace('_', ' ')} | {p.Variant} | {(p.RequestRate is double rate ? $"{rate:0.###} requests/s" : $"concurrency {p.Concurrency}")} | {p.ItlP50Ms:F2} | {p.TtftP50Ms:F1} | {p.PricePerMillionTokens:G4} | {p.OutputTokensPerSecond:F1} |");
        md.AppendLine();
        md.AppendLine(string.Join(" ", Charts.All.Select(c => $"![{Path.GetFileNameWithoutExtension(c)}]({c})")));
        return md.ToString();
    }
}
