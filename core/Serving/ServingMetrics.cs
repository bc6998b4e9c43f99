using System.Diagnostics.Metrics;

namespace Sio.Serving;

/// <summary>
/// The serving engine's instruments (System.Diagnostics.Metrics, meter "Sio.Serving"), exported by every host as
/// Prometheus metrics under vLLM's names with sio's prefix, every measurement labelled with <c>model_name</c>:
/// latency histograms in seconds (time to first token from the request's arrival, time per output token, inter-token
/// latency, end-to-end latency, queue time); counters of prompt and generated tokens, of requests by finish reason
/// (<c>stop</c>, <c>length</c>, <c>abort</c>, <c>error</c>) and of draft tokens proposed and accepted (acceptance is
/// their ratio); gauges of running and waiting requests and of the KV cache's use (tokens held over tokens allocated).
/// </summary>
/// <remarks>
/// One process-wide meter whose instruments live as long as the process; an engine's instance only adds its label and,
/// while it lives, its gauges. (A meter per engine broke on a hot swap to the same model id: disposing the old
/// engine's meter ended the exporter's streams that the new engine's identical instruments were sharing.)
/// </remarks>
public sealed class ServingMetrics : IDisposable
{
    public const string MeterName = "Sio.Serving";
    static readonly Meter Meter = new(MeterName);
    static readonly List<ServingMetrics> Live = [];

    // vLLM's bucket edges, with finer ones below 10 ms where a CPU decodes small models
    static readonly double[] FirstTokenBuckets = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];
    static readonly double[] TokenBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
    static readonly double[] RequestBuckets = [0.01, 0.05, 0.1, 0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];

    static readonly Counter<long> Prompt = Meter.CreateCounter<long>("sio_prompt_tokens", description: "Prompt tokens of finished requests");
    static readonly Counter<long> Generated = Meter.CreateCounter<long>("sio_generation_tokens", description: "Tokens generated");
    static readonly Counter<long> Requests = Meter.CreateCounter<long>("sio_requests", description: "Requests finished, by finish reason (stop, length, abort, error)");
    static readonly Counter<long> Proposed = Meter.CreateCounter<long>("sio_draft_tokens_proposed", description: "Draft tokens proposed");
    static readonly Counter<long> Accepted = Meter.CreateCounter<long>("sio_draft_tokens_accepted", description: "Draft tokens accepted");
    static readonly Histogram<double> Ttft = Histogram("sio_time_to_first_token", "Time from the request's arrival to its first token", FirstTokenBuckets);
    static readonly Histogram<double> Tpot = Histogram("sio_time_per_output_token", "A request's decode time over its tokens after the first", TokenBuckets);
    static readonly Histogram<double> Itl = Histogram("sio_inter_token_latency", "Time between two tokens of a request", TokenBuckets);
    static readonly Histogram<double> E2e = Histogram("sio_e2e_request_latency", "Time from the request's arrival to its end", RequestBuckets);
    static readonly Histogram<double> Queue = Histogram("sio_request_queue_time", "Time a request waited for a row", RequestBuckets);

    static ServingMetrics()
    {
        Meter.CreateObservableGauge("sio_num_requests_running", () => Gauge(m => m._running(), Enumerable.Sum), description: "Requests in the batch (prefilling or decoding)");
        Meter.CreateObservableGauge("sio_num_requests_waiting", () => Gauge(m => m._waiting(), Enumerable.Sum), description: "Requests queued for a row");
        Meter.CreateObservableGauge("sio_kv_cache_usage_ratio", () => Gauge(m => m._kvCacheUsage(), Enumerable.Max), description: "KV cache in use: tokens held over tokens allocated, 0 to 1");
    }

    static Histogram<double> Histogram(string name, string description, double[] buckets) =>
        Meter.CreateHistogram(name, "s", description, tags: null, new InstrumentAdvice<double> { HistogramBucketBoundaries = buckets });

    /// <summary>A gauge's value per model id over the live engines (two share an id for a moment during a hot swap).</summary>
    static IEnumerable<Measurement<T>> Gauge<T>(Func<ServingMetrics, T> read, Func<IEnumerable<T>, T> combine) where T : struct
    {
        ServingMetrics[] live;
        lock (Live) live = [.. Live];
        return live.GroupBy(m => m._model.Value).Select(g => new Measurement<T>(combine(g.Select(read)), g.First()._model));
    }

    readonly KeyValuePair<string, object?> _model;
    readonly Func<int> _running, _waiting;
    readonly Func<double> _kvCacheUsage;

    /// <param name="model">The model id clients see, the <c>model_name</c> label.</param>
    /// <param name="kvCacheUsage">Tokens held in the KV cache over tokens allocated for it, 0 to 1.</param>
    public ServingMetrics(string model, Func<int> running, Func<int> waiting, Func<double> kvCacheUsage)
    {
        _model = new("model_name", model);
        (_running, _waiting, _kvCacheUsage) = (running, waiting, kvCacheUsage);
        lock (Live) Live.Add(this);
    }

    public void Admitted(double queueSeconds) => Queue.Record(queueSeconds, _model);
    public void FirstToken(double sinceArrivalSeconds) { Ttft.Record(sinceArrivalSeconds, _model); Generated.Add(1, _model); }
    public void NextToken(double gapSeconds) { Itl.Record(gapSeconds, _model); Generated.Add(1, _model); }

    /// <summary>A request has ended; <paramref name="decodeSeconds"/> runs from its first token to its last.</summary>
    public void Finished(string reason, int promptTokens, int outputTokens, double e2eSeconds, double decodeSeconds)
    {
        var finished = new KeyValuePair<string, object?>("finished_reason", reason);
        Requests.Add(1, _model, finished);
        Prompt.Add(promptTokens, _model);
        if (e2eSeconds > 0) E2e.Record(e2eSeconds, _model);
        if (outputTokens > 1) Tpot.Record(decodeSeconds / (outputTokens - 1), _model);
    }

    /// <summary>A request that never reached a row (cancelled while queued, or refused at admission).</summary>
    public void Ended(string reason) => Requests.Add(1, _model, new KeyValuePair<string, object?>("finished_reason", reason));

    public void Drafted(long proposed, long accepted)
    {
        if (proposed <= 0) return;
        Proposed.Add(proposed, _model);
        Accepted.Add(accepted, _model);
    }

    /// <summary>The engine is gone: its gauges stop (its counters and histograms keep their totals, as Prometheus expects).</summary>
    public void Dispose() { lock (Live) Live.Remove(this); }
}
