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
    /// <summary>Open loop: requests per second at each level (arrivals do not wait for answers), instead of closed-loop concurrency.</summary>
    public IReadOnlyList<double>? RequestRates { get; init; }
    /// <summary>Open loop: the gamma shape of the gaps between arrivals (1: Poisson).</summary>
    public double Burstiness { get; init; } = 1;
    /// <summary>Latency objectives for goodput (requests per second that met every one).</summary>
    public LatencySlo? Slo { get; init; }
    /// <summary>Times each level is run; with 2 or more, throughput and goodput get 95 % confidence intervals.</summary>
    public int Runs { get; init; } = 1;
    /// <summary>Open loop in-process: the batching engine's rows (what `sio serve --max-concurrent` would be).</summary>
    public int MaxBatch { get; init; } = 8;
    /// <summary>Seed of the arrival schedule.</summary>
    public int Seed { get; init; } = 1;

    public bool OpenLoop => RequestRates is { Count: > 0 };

    public LoadBenchmarkConfig Validate()
    {
        if (Concurrency.Count == 0 || Concurrency.Any(c => c < 1 || c > 1024)) throw new SioException("--concurrency must list levels from 1 to 1024");
        if (MaxNewTokens < 1) throw new SioException($"--max-new-tokens must be ≥ 1, got {MaxNewTokens}");
        if (Requests < 1) throw new SioException($"--requests must be ≥ 1, got {Requests}");
        if (DurationSeconds is <= 0) throw new SioException("--duration must be > 0");
        if (Runs is < 1 or > 100) throw new SioException($"--runs must be from 1 to 100, got {Runs}");
        if (MaxBatch is < 1 or > 256) throw new SioException($"--max-batch must be from 1 to 256, got {MaxBatch}");
        if (OpenLoop && DurationSeconds is not null) throw new SioException("--duration applies to closed-loop levels; an open-loop level sends --requests arrivals");
        if (RequestRates?.Where(r => !(r > 0) || double.IsInfinity(r)).Select(r => (double?)r).FirstOrDefault() is double bad) throw new SioException($"--request-rate must list positive requests per second, got {bad}");
        if (!(Burstiness > 0) || double.IsInfinity(Burstiness)) throw new SioException($"--burstiness must be > 0, got {Burstiness}");
        if (PromptTokensMin < 1 || PromptTokensMax < PromptTokensMin) throw new SioException($"--prompt-tokens-min/max must satisfy 1 ≤ min ≤ max, got {PromptTokensMin}..{PromptTokensMax}");
        Speculative.Validate();
        return this;
    }
}

/// <summary>One request's timings.</summary>
/// <param name="QueueMs">Time from arrival until the engine gave the request a row (open loop in-process; null where unknown).</param>
public sealed record RequestTiming(double TtftMs, IReadOnlyList<double> ItlMs, double E2eMs, int PromptTokens, int OutputTokens, SpeculativeStats Speculative,
    double? QueueMs = null)
{
    /// <summary>Time per output token after the first (null for a one-token answer).</summary>
    public double? TpotMs => OutputTokens > 1 && E2eMs > TtftMs ? (E2eMs - TtftMs) / (OutputTokens - 1) : null;
}

/// <summary>
/// The measurements of one level: a closed-loop concurrency, or an open-loop request rate (<see cref="RequestRate"/>,
/// with <see cref="Concurrency"/> the engine's rows). <see cref="PricePerMillionTokens"/> comes from the measured output
/// throughput; <see cref="BlendedPricePerMillionTokens"/> is the reference product's formula (1 / p50 ITL × concurrency),
/// kept for comparison only. With several runs the percentiles pool every request and the intervals span the runs.
/// </summary>
public sealed record LevelResult(int Concurrency, int Requests, int Errors, double WallSeconds,
    Percentiles TtftMs, Percentiles ItlMs, Percentiles E2eMs,
    double OutputTokensPerSecond, double OutputTokensPerSecondPerRequest, double RequestsPerSecond, double TotalTokensPerSecond,
    double BlendedPricePerMillionTokens, double? AcceptanceRate, double? MeanAcceptedLength, IReadOnlyList<string> ErrorMessages,
    Percentiles? TpotMs = null, double? RequestRate = null, int GoodRequests = 0, double Goodput = 0, double PricePerMillionTokens = double.PositiveInfinity,
    int Runs = 1, double? OutputTokensPerSecondCi95 = null, double? GoodputCi95 = null, Percentiles? QueueMs = null);

/// <summary>The prompts a sweep uses, and how many dataset rows could not be used.</summary>
public sealed record BenchmarkPrompts(IReadOnlyList<List<int>> Prompts, IReadOnlyList<DatasetRecord> Records, int SkippedRows, int OutOfRange)
{
    /// <summary>The answer length each prompt asks for (closed loop in-process); null: every request asks for the config's MaxNewTokens.</summary>
    public IReadOnlyList<int>? AnswerTokens { get; init; }
}

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
        var levels = config.OpenLoop ? config.RequestRates!.Select(r => (Concurrency: config.MaxBatch, Rate: (double?)r)) : config.Concurrency.Select(c => (Concurrency: c, Rate: (double?)null));
        foreach (var (c, rate) in levels)
        {
            var runs = new List<(List<RequestTiming> Timings, List<string> Errors, double Wall)>();
            for (int run = 0; run < config.Runs; run++)
                runs.Add(rate is double r ? OpenLoop.Run(model, prompts.Prompts, config, r, config.Seed + run, progress) : RunLevel(model, prompts, config, c, progress));
            results.Add(Summarize(c, runs, instance, discount, config.Slo, rate));
        }
        return results;
    }

    static (List<RequestTiming>, List<string>, double) RunLevel(Model model, BenchmarkPrompts all, LoadBenchmarkConfig config, int concurrency,
        IProgress<string>? progress)
    {
        var prompts = all.Prompts;
        if (config.Endpoint is not null) return HttpLevel(model, prompts, config, concurrency, progress);
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
                var asked = all.AnswerTokens is { } answers ? options with { MaxTokens = answers[n % answers.Count] } : options;
                var itl = new List<double>();
                var clock = Stopwatch.StartNew();
                double ttft = -1, last = 0;
                try
                {
                    var r = TextGeneration.Generate(model, prompt, asked, (id, _) =>
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
        return (timings.ToList(), errors.ToList(), wall.Elapsed.TotalSeconds);
    }

    /// <summary>The same closed loop against a server: streamed completions, each text chunk timed as it arrives.</summary>
    static (List<RequestTiming>, List<string>, double) HttpLevel(Model model, IReadOnlyList<List<int>> prompts, LoadBenchmarkConfig config, int concurrency,
        IProgress<string>? progress)
    {
        var timings = new ConcurrentBag<RequestTiming>();
        var errors = new ConcurrentBag<string>();
        var texts = PromptTexts(model, prompts);
        int next = -1, done = 0;
        using var http = HttpClientFor(config);
        var wall = Stopwatch.StartNew();
        bool More(int n) => config.DurationSeconds is double d ? wall.Elapsed.TotalSeconds < d : n < config.Requests;
        async Task Worker()
        {
            while (true)
            {
                int n = Interlocked.Increment(ref next);
                if (!More(n)) break;
                var (timing, error) = await StreamAsync(http, texts[n % texts.Length], prompts[n % prompts.Count].Count, config, Stopwatch.GetTimestamp());
                if (timing is not null) timings.Add(timing); else errors.Add(error!);
                progress?.Report($"concurrency {concurrency}: {Interlocked.Increment(ref done)} requests");
            }
        }
        Task.WaitAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(Worker)).ToArray());
        return (timings.ToList(), errors.ToList(), wall.Elapsed.TotalSeconds);
    }

    internal static string[] PromptTexts(Model model, IReadOnlyList<List<int>> prompts) => prompts.Select(p => model.Tokenizer.Decode(p.Skip(1), p[0])).ToArray();

    internal static HttpClient HttpClientFor(LoadBenchmarkConfig config)
    {
        var http = new HttpClient { BaseAddress = config.Endpoint, Timeout = TimeSpan.FromMinutes(10) };
        if (Environment.GetEnvironmentVariable("SIO_API_KEY") is { Length: > 0 } key) http.DefaultRequestHeaders.Authorization = new("Bearer", key);
        return http;
    }

    /// <summary>One streamed completion, timed from <paramref name="arrived"/> (a Stopwatch timestamp): its timing, or why it failed.</summary>
    internal static async Task<(RequestTiming?, string?)> StreamAsync(HttpClient http, string text, int promptTokens, LoadBenchmarkConfig config, long arrived)
    {
        var body = new System.Text.Json.Nodes.JsonObject
        {
            ["prompt"] = text, ["max_tokens"] = config.MaxNewTokens, ["temperature"] = 0, ["stream"] = true, ["ignore_eos"] = !config.StopAtEos,
        };
        double ttft = -1, last = 0;
        var itl = new List<double>();
        int outputTokens = 0;
        double Now() => Stopwatch.GetElapsedTime(arrived).TotalMilliseconds;
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json") };
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            if (!response.IsSuccessStatusCode) return (null, $"HTTP {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            while (await reader.ReadLineAsync() is { } line)
            {
                if (!line.StartsWith("data: ") || line == "data: [DONE]") continue;
                var chunk = System.Text.Json.Nodes.JsonNode.Parse(line[6..])!;
                if (chunk["usage"]?["completion_tokens"] is { } u) outputTokens = u.GetValue<int>();
                if (chunk["choices"]?[0]?["text"]?.GetValue<string>() is not { Length: > 0 }) continue;
                double now = Now();
                if (ttft < 0) ttft = now; else itl.Add(now - last);
                last = now;
            }
            if (outputTokens == 0 && ttft >= 0) outputTokens = itl.Count + 1; // no usage streamed: one token per chunk
            return (new RequestTiming(ttft < 0 ? Now() : ttft, itl, Now(), promptTokens, outputTokens, new SpeculativeStats()), null);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or TaskCanceledException or System.Text.Json.JsonException) { return (null, e.Message); }
    }

    /// <summary>The level's metrics from its request timings: the part of the sweep that is pure arithmetic.</summary>
    public static LevelResult Summarize(int concurrency, IReadOnlyList<RequestTiming> timings, IReadOnlyList<string> errors, double wallSeconds,
        Instance instance, double discount, LatencySlo? slo = null, double? rate = null) =>
        Summarize(concurrency, new List<(List<RequestTiming>, List<string>, double)> { ([.. timings], [.. errors], wallSeconds) }, instance, discount, slo, rate);

    /// <summary>Several runs of one level: percentiles over every request of every run; throughput and goodput per run,
    /// reported as their mean with a 95 % confidence interval (Student's t) when there are two runs or more.</summary>
    public static LevelResult Summarize(int concurrency, IReadOnlyList<(List<RequestTiming> Timings, List<string> Errors, double Wall)> runs,
        Instance instance, double discount, LatencySlo? slo = null, double? rate = null)
    {
        var timings = runs.SelectMany(r => r.Timings).ToList();
        var errors = runs.SelectMany(r => r.Errors).ToList();
        double wallSeconds = runs.Sum(r => r.Wall);
        var itl = Percentiles.Of(timings.SelectMany(t => t.ItlMs));
        double totalTps = Pricing.TotalTokensPerSecond(itl.P50, concurrency);
        var spec = timings.Select(t => t.Speculative).Aggregate(new SpeculativeStats(), (a, b) => a.Add(b));
        var perRequest = timings.Where(t => t.E2eMs > t.TtftMs && t.OutputTokens > 1).Select(t => (t.OutputTokens - 1) / ((t.E2eMs - t.TtftMs) / 1000)).ToList();
        var perRunTps = runs.Select(r => r.Wall > 0 ? r.Timings.Sum(t => (double)t.OutputTokens) / r.Wall : 0).ToList();
        var perRunGoodput = runs.Select(r => r.Wall > 0 ? r.Timings.Count(t => slo?.Met(t) ?? true) / r.Wall : 0).ToList();
        double outputTps = perRunTps.Average();
        return new LevelResult(concurrency, timings.Count, errors.Count, wallSeconds,
            Percentiles.Of(timings.Select(t => t.TtftMs)), itl, Percentiles.Of(timings.Select(t => t.E2eMs)),
            outputTps,
            perRequest.Count > 0 ? perRequest.Average() : 0,
            wallSeconds > 0 ? timings.Count / wallSeconds : 0,
            totalTps,
            Pricing.BlendedPricePerMillionTokens(instance.PricePerHour, discount, totalTps),
            spec.Proposed > 0 ? spec.AcceptanceRate : null,
            spec.TargetSteps > 0 && spec.Proposed > 0 ? spec.MeanAcceptedLength : null,
            errors.Distinct().Take(5).ToList(),
            Percentiles.Of(timings.Select(t => t.TpotMs).OfType<double>()), rate,
            timings.Count(t => slo?.Met(t) ?? true), perRunGoodput.Average(),
            Pricing.BlendedPricePerMillionTokens(instance.PricePerHour, discount, outputTps),
            runs.Count, Ci95(perRunTps), Ci95(perRunGoodput),
            timings.Any(t => t.QueueMs is not null) ? Percentiles.Of(timings.Select(t => t.QueueMs).OfType<double>()) : null);
    }

    /// <summary>The half-width of a 95 % confidence interval of the mean (Student's t), or null under two samples.</summary>
    public static double? Ci95(IReadOnlyList<double> xs)
    {
        if (xs.Count < 2) return null;
        double mean = xs.Average(), sd = Math.Sqrt(xs.Sum(x => (x - mean) * (x - mean)) / (xs.Count - 1));
        double[] t = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086];
        return (xs.Count - 1 <= t.Length ? t[xs.Count - 2] : 1.96) * sd / Math.Sqrt(xs.Count);
    }
}
