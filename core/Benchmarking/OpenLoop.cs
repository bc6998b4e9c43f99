using System.Collections.Concurrent;
using System.Diagnostics;
using Sio.Generation;
using Sio.Serving;

namespace Sio.Benchmarking;

/// <summary>
/// An open-loop level, as serving benchmarks measure: requests arrive on a seeded gamma (Poisson when the burstiness is
/// 1) schedule at the given rate, whether or not earlier ones have been answered, so a server that falls behind shows it
/// as queueing in TTFT and end-to-end latency. In-process the requests go to sio's continuous-batching engine (with
/// <see cref="LoadBenchmarkConfig.MaxBatch"/> rows and a queue for every request); with an endpoint, to the server.
/// Every latency runs from the request's scheduled arrival.
/// </summary>
public static class OpenLoop
{
    public static (List<RequestTiming>, List<string>, double) Run(Model model, IReadOnlyList<List<int>> prompts, LoadBenchmarkConfig config, double rate, int seed,
        IProgress<string>? progress)
    {
        var schedule = Arrivals.Schedule(rate, config.Burstiness, config.Requests, seed);
        var timings = new ConcurrentBag<RequestTiming>();
        var errors = new ConcurrentBag<string>();
        int done = 0;
        void Report() => progress?.Report($"{rate:0.###} requests/s: {Interlocked.Increment(ref done)}/{config.Requests} requests");
        using var http = config.Endpoint is null ? null : LoadBenchmark.HttpClientFor(config);
        using var engine = config.Endpoint is null
            ? new InferenceEngine(model, new ServeOptions { MaxConcurrent = config.MaxBatch, QueueCapacity = config.Requests, Speculative = config.Speculative })
            : null;
        var texts = http is null ? null : LoadBenchmark.PromptTexts(model, prompts);
        async Task Send(int n, long arrived)
        {
            var prompt = prompts[n % prompts.Count];
            var (t, e) = http is not null
                ? await LoadBenchmark.StreamAsync(http, texts![n % texts.Length], prompt.Count, config, arrived)
                : await InProcessAsync(engine!, prompt, config, arrived);
            if (t is not null) timings.Add(t); else errors.Add(e!);
            Report();
        }

        var start = Stopwatch.GetTimestamp();
        var inFlight = new List<Task>();
        for (int n = 0; n < schedule.Length; n++)
        {
            // never early: a sleep rounded down to whole milliseconds would send a request before its arrival, and its
            // queue time would come out negative
            double wait;
            while ((wait = schedule[n] - Stopwatch.GetElapsedTime(start).TotalSeconds) > 0) Thread.Sleep(TimeSpan.FromMilliseconds(Math.Ceiling(wait * 1000)));
            long arrived = start + (long)(schedule[n] * Stopwatch.Frequency);
            int i = n;
            inFlight.Add(Task.Run(() => Send(i, arrived)));
        }
        Task.WaitAll([.. inFlight]);
        return (timings.ToList(), errors.ToList(), Stopwatch.GetElapsedTime(start).TotalSeconds);
    }

    /// <summary>One request through the batching engine, each decoded piece timed from the scheduled arrival.</summary>
    static async Task<(RequestTiming?, string?)> InProcessAsync(InferenceEngine engine, List<int> prompt, LoadBenchmarkConfig config, long arrived)
    {
        var options = new GenerationOptions { MaxTokens = config.MaxNewTokens, Speculative = config.Speculative, IgnoreModelStopTokens = !config.StopAtEos };
        var job = new GenerationJob(prompt, options, CancellationToken.None);
        if (!engine.TryEnqueue(job)) return (null, "the engine's queue was full");
        double ttft = -1, last = 0;
        var itl = new List<double>();
        await foreach (var piece in job.Pieces.Reader.ReadAllAsync())
        {
            if (piece.Length == 0) continue;
            double now = Stopwatch.GetElapsedTime(arrived).TotalMilliseconds;
            if (ttft < 0) ttft = now; else itl.Add(now - last);
            last = now;
        }
        try
        {
            var r = await job.Result.Task;
            double e2e = Stopwatch.GetElapsedTime(arrived).TotalMilliseconds;
            double? queue = job.Admitted is long admitted ? Stopwatch.GetElapsedTime(arrived, admitted).TotalMilliseconds : null;
            return (new RequestTiming(ttft < 0 ? e2e : ttft, itl, e2e, prompt.Count, r.TokenIds.Count, r.Speculative, queue), null);
        }
        catch (Exception e) when (e is SioException or InvalidOperationException) { return (null, e.Message); }
    }
}
