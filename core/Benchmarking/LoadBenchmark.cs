using System.Collections.Concurrent;
using System.Diagnostics;
using Sio.Evaluation;
using Sio.Generation;
using Sio.Speculative;

namespace Sio.Benchmarking;

/// <summary>A load sweep's settings.</summary>
public sealed record LoadBenchmarkConfig
{
    public IReadOnlyList<int> Concurrency { get; init; } = [1, 2, 4, 8, 16];
    public int MaxNewTokens { get; init; } = 250;
    /// <summary>Requests per concurrency level (when no duration is given).</summary>
    public int Requests { get; init; } = 32;
    /// <summary>Seconds per concurrency level; when set, requests keep starting until it has passed.</summary>
    public double? DurationSeconds { get; init; }
    public int PromptTokensMin { get; init; } = 500;
    public int PromptTokensMax { get; init; } = 1000;
    public SpeculativeOptions Speculative { get; init; } = new();
    public ModelOptions ModelOptions { get; init; } = new();
    /// <summary>Stop at the model's EOS instead of always generating MaxNewTokens (fixed lengths make levels comparable).</summary>
    public bool StopAtEos { get; init; }
    /// <summary>An OpenAI-compatible server to measure over HTTP (streamed /v1/completions) instead of the engine in-process.</summary>
    public Uri? Endpoint { get; init; }

    public LoadBenchmarkConfig Validate()
    {
        if (Concurrency.Count == 0 || Concurrency.Any(c => c < 1 || c > 1024)) throw new SioException("--concurrency must list levels from 1 to 1024");
        if (MaxNewTokens < 1) throw new SioException($"--max-new-tokens must be ≥ 1, got {MaxNewTokens}");
        if (Requests < 1) throw new SioException($"--requests must be ≥ 1, got {Requests}");
        if (DurationSeconds is <= 0) throw new SioException("--duration must be > 0");
        if (PromptTokensMin < 1 || PromptTokensMax < PromptTokensMin) throw new SioException($"--prompt-tokens-min/max must satisfy 1 ≤ min ≤ max, got {PromptTokensMin}..{PromptTokensMax}");
        Speculative.Validate();
        return this;
    }
}

/// <summary>One request's timings.</summary>
public sealed record RequestTiming(double TtftMs, IReadOnlyList<double> ItlMs, double E2eMs, int PromptTokens, int OutputTokens, SpeculativeStats Speculative);

/// <summary>The measurements of one concurrency level.</summary>
public sealed record LevelResult(int Concurrency, int Requests, int Errors, double WallSeconds,
    Percentiles TtftMs, Percentiles ItlMs, Percentiles E2eMs,
    double OutputTokensPerSecond, double OutputTokensPerSecondPerRequest, double RequestsPerSecond, double TotalTokensPerSecond,
    double BlendedPricePerMillionTokens, double? AcceptanceRate, double? MeanAcceptedLength, IReadOnlyList<string> ErrorMessages);

/// <summary>The prompts a sweep uses, and how many dataset rows could not be used.</summary>
public sealed record BenchmarkPrompts(IReadOnlyList<List<int>> Prompts, IReadOnlyList<DatasetRecord> Records, int SkippedRows, int OutOfRange);

/// <summary>
/// A closed-loop load sweep in-process against the generation engine: at each concurrency level,
/// that many workers each send the next prompt as soon as their previous request is answered, until
/// the level's request count (or duration) is reached. Every token's arrival is timed.
/// </summary>
public static class LoadBenchmark
{
    /// <summary>Prompts in the model's own tokens, filtered by length and cut to leave room for the answer.</summary>
    public static BenchmarkPrompts Prompts(Model model, Dataset data, LoadBenchmarkConfig config)
    {
        int room = model.Config.ContextLength - config.MaxNewTokens;
        if (room < 2) throw new SioException($"--max-new-tokens {config.MaxNewTokens} leaves no room for a prompt in the model's context of {model.Config.ContextLength}");
        var prompts = new List<List<int>>();
        var records = new List<DatasetRecord>();
        int outOfRange = 0;
        foreach (var r in data.Records)
        {
            var ids = RecordPrompt.Ids(model, r);
            if (ids.Count < config.PromptTokensMin || ids.Count > config.PromptTokensMax) { outOfRange++; continue; }
            if (ids.Count > room) ids.RemoveRange(room, ids.Count - room);
            prompts.Add(ids);
            records.Add(r);
        }
        if (prompts.Count == 0)
            throw SioException.InFile(data.Path, $"no row has a prompt of {config.PromptTokensMin}–{config.PromptTokensMax} tokens in this model's tokenizer ({outOfRange} out of range, {data.Skipped} unusable)");
        return new BenchmarkPrompts(prompts, records, data.Skipped, outOfRange);
    }

    public static List<LevelResult> Sweep(Model model, BenchmarkPrompts prompts, LoadBenchmarkConfig config, Instance instance, double discount,
        IProgress<string>? progress = null)
    {
        var results = new List<LevelResult>();
        foreach (var c in config.Concurrency)
            results.Add(RunLevel(model, prompts.Prompts, config, c, instance, discount, progress));
        return results;
    }

    static LevelResult RunLevel(Model model, IReadOnlyList<List<int>> prompts, LoadBenchmarkConfig config, int concurrency, Instance instance, double discount,
        IProgress<string>? progress)
    {
        if (config.Endpoint is not null) return HttpLevel(model, prompts, config, concurrency, instance, discount, progress);
        var timings = new ConcurrentBag<RequestTiming>();
        var errors = new ConcurrentBag<string>();
        int next = -1, done = 0;
        // drafters are built (and a self-draft quantized, once) before the clock starts
        var drafters = new List<IDrafter?>();
        try
        {
            for (int w = 0; w < concurrency; w++) drafters.Add(DrafterFactory.Create(config.Speculative, model, config.ModelOptions));
        }
        catch
        {
            foreach (var d in drafters) d?.Dispose();
            throw;
        }
        var wall = Stopwatch.StartNew();
        bool More(int n) => config.DurationSeconds is double d ? wall.Elapsed.TotalSeconds < d : n < config.Requests;
        var workers = Enumerable.Range(0, concurrency).Select(w => Task.Factory.StartNew(() =>
        {
            using var drafter = drafters[w];
            var options = new GenerationOptions { MaxTokens = config.MaxNewTokens, Speculative = config.Speculative, IgnoreModelStopTokens = !config.StopAtEos };
            while (true)
            {
                int n = Interlocked.Increment(ref next);
                if (!More(n)) break;
                var prompt = prompts[n % prompts.Count];
                var itl = new List<double>();
                var clock = Stopwatch.StartNew();
                double ttft = -1, last = 0;
                try
                {
                    var r = TextGeneration.Generate(model, prompt, options, (id, _) =>
                    {
                        if (id < 0) return; // the flush of held-back bytes is not a token
                        double now = clock.Elapsed.TotalMilliseconds;
                        if (ttft < 0) ttft = now; else itl.Add(now - last);
                        last = now;
                    }, drafter: drafter);
                    timings.Add(new RequestTiming(ttft < 0 ? clock.Elapsed.TotalMilliseconds : ttft, itl, clock.Elapsed.TotalMilliseconds, prompt.Count, r.TokenIds.Count, r.Speculative));
                }
                catch (SioException e) { errors.Add(e.Message); }
                progress?.Report($"concurrency {concurrency}: {Interlocked.Increment(ref done)} requests");
            }
        }, TaskCreationOptions.LongRunning)).ToArray();
        Task.WaitAll(workers);
        double seconds = wall.Elapsed.TotalSeconds;
        return Summarize(concurrency, timings.ToList(), errors.ToList(), seconds, instance, discount);
    }

    /// <summary>The same closed loop against a server: streamed completions, each text chunk timed as it arrives.</summary>
    static LevelResult HttpLevel(Model model, IReadOnlyList<List<int>> prompts, LoadBenchmarkConfig config, int concurrency, Instance instance, double discount,
        IProgress<string>? progress)
    {
        var timings = new ConcurrentBag<RequestTiming>();
        var errors = new ConcurrentBag<string>();
        var texts = prompts.Select(p => model.Tokenizer.Decode(p.Skip(1), p[0])).ToArray();
        int next = -1, done = 0;
        using var http = new HttpClient { BaseAddress = config.Endpoint, Timeout = TimeSpan.FromMinutes(10) };
        if (Environment.GetEnvironmentVariable("SIO_API_KEY") is { Length: > 0 } key) http.DefaultRequestHeaders.Authorization = new("Bearer", key);
        var wall = Stopwatch.StartNew();
        bool More(int n) => config.DurationSeconds is double d ? wall.Elapsed.TotalSeconds < d : n < config.Requests;
        async Task Worker()
        {
            while (true)
            {
                int n = Interlocked.Increment(ref next);
                if (!More(n)) break;
                var body = new System.Text.Json.Nodes.JsonObject
                {
                    ["prompt"] = texts[n % texts.Length], ["max_tokens"] = config.MaxNewTokens, ["temperature"] = 0, ["stream"] = true, ["ignore_eos"] = !config.StopAtEos,
                };
                var clock = Stopwatch.StartNew();
                double ttft = -1, last = 0;
                var itl = new List<double>();
                int outputTokens = 0;
                try
                {
                    using var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json") };
                    using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                    if (!response.IsSuccessStatusCode) { errors.Add($"HTTP {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}"); continue; }
                    using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
                    while (await reader.ReadLineAsync() is { } line)
                    {
                        if (!line.StartsWith("data: ") || line == "data: [DONE]") continue;
                        var chunk = System.Text.Json.Nodes.JsonNode.Parse(line[6..])!;
                        if (chunk["usage"]?["completion_tokens"] is { } u) outputTokens = u.GetValue<int>();
                        if (chunk["choices"]?[0]?["text"]?.GetValue<string>() is not { Length: > 0 }) continue;
                        double now = clock.Elapsed.TotalMilliseconds;
                        if (ttft < 0) ttft = now; else itl.Add(now - last);
                        last = now;
                    }
                    if (outputTokens == 0 && ttft >= 0) outputTokens = itl.Count + 1; // no usage streamed: one token per chunk
                    timings.Add(new RequestTiming(ttft < 0 ? clock.Elapsed.TotalMilliseconds : ttft, itl, clock.Elapsed.TotalMilliseconds, prompts[n % prompts.Count].Count, outputTokens, new SpeculativeStats()));
                }
                catch (Exception e) when (e is HttpRequestException or IOException or TaskCanceledException or System.Text.Json.JsonException) { errors.Add(e.Message); }
                progress?.Report($"concurrency {concurrency}: {Interlocked.Increment(ref done)} requests");
            }
        }
        Task.WaitAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(Worker)).ToArray());
        return Summarize(concurrency, timings.ToList(), errors.ToList(), wall.Elapsed.TotalSeconds, instance, discount);
    }

    /// <summary>The level's metrics from its request timings: the part of the sweep that is pure arithmetic.</summary>
    public static LevelResult Summarize(int concurrency, IReadOnlyList<RequestTiming> timings, IReadOnlyList<string> errors, double wallSeconds,
        Instance instance, double discount)
    {
        var itl = Percentiles.Of(timings.SelectMany(t => t.ItlMs));
        long output = timings.Sum(t => (long)t.OutputTokens);
        double totalTps = Pricing.TotalTokensPerSecond(itl.P50, concurrency);
        var spec = timings.Select(t => t.Speculative).Aggregate(new SpeculativeStats(), (a, b) => a.Add(b));
        var perRequest = timings.Where(t => t.E2eMs > t.TtftMs && t.OutputTokens > 1).Select(t => (t.OutputTokens - 1) / ((t.E2eMs - t.TtftMs) / 1000)).ToList();
        return new LevelResult(concurrency, timings.Count, errors.Count, wallSeconds,
            Percentiles.Of(timings.Select(t => t.TtftMs)), itl, Percentiles.Of(timings.Select(t => t.E2eMs)),
            wallSeconds > 0 ? output / wallSeconds : 0,
            perRequest.Count > 0 ? perRequest.Average() : 0,
            wallSeconds > 0 ? timings.Count / wallSeconds : 0,
            totalTps,
            Pricing.BlendedPricePerMillionTokens(instance.PricePerHour, discount, totalTps),
            spec.Proposed > 0 ? spec.AcceptanceRate : null,
            spec.TargetSteps > 0 && spec.Proposed > 0 ? spec.MeanAcceptedLength : null,
            errors.Distinct().Take(5).ToList());
    }
}
