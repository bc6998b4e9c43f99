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
public sealed class ServingMetrics : IDisposable
{
    public const string MeterName = "Sio.Serving";
    readonly Meter _meter = new(MeterName);
    readonly KeyValuePair<string, object?> _model;
    readonly Counter<long> _prompt, _generated, _requests, _proposed, _accepted;
    readonly Histogram<double> _ttft, _tpot, _itl, _e2e, _queue;

    // vLLM's bucket edges, with finer ones below 10 ms where a CPU decodes small models
    static readonly double[] FirstTokenBuckets = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];
    static readonly double[] TokenBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
    static readonly double[] RequestBuckets = [0.01, 0.05, 0.1, 0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];

    /// <param name="model">The model id clients see, the <c>model_name</c> label.</param>
    /// <param name="kvCacheUsage">Tokens held in the KV cache over tokens allocated for it, 0 to 1.</param>
    public ServingMetrics(string model, Func<int> running, Func<int> waiting, Func<double> kvCacheUsage)
    {
        _model = new("model_name", model);
        _meter.CreateObservableGauge("sio_num_requests_running", () => new Measurement<int>(running(), _model), description: "Requests in the batch (prefilling or decoding)");
        _meter.CreateObservableGauge("sio_num_requests_waiting", () => new Measurement<int>(waiting(), _model), description: "Requests queued for a row");
        _meter.CreateObservableGauge("sio_kv_cache_usage_ratio", () => new Measurement<double>(kvCacheUsage(), _model), description: "KV cache in use: tokens held over tokens allocated, 0 to 1");
        _prompt = _meter.CreateCounter<long>("sio_prompt_tokens", description: "Prompt tokens of finished requests");
        _generated = _meter.CreateCounter<long>("sio_generation_tokens", description: "Tokens generated");
        _requests = _meter.CreateCounter<long>("sio_requests", description: "Requests finished, by finish reason (stop, length, abort, error)");
        _proposed = _meter.CreateCounter<long>("sio_draft_tokens_proposed", description: "Draft tokens proposed");
        _accepted = _meter.CreateCounter<long>("sio_draft_tokens_accepted", description: "Draft tokens accepted");
        _ttft = Histogram("sio_time_to_first_token", "Time from the request's arrival to its first token", FirstTokenBuckets);
        _tpot = Histogram("sio_time_per_output_token", "A request's decode time over its tokens after the first", TokenBuckets);
        _itl = Histogram("sio_inter_token_latency", "Time between two tokens of a request", TokenBuckets);
        _e2e = Histogram("sio_e2e_request_latency", "Time from the request's arrival to its end", RequestBuckets);
        _queue = Histogram("sio_request_queue_time", "Time a request waited for a row", RequestBuckets);
    }

    Histogram<double> Histogram(string name, string description, double[] buckets) =>
        _meter.CreateHistogram(name, "s", description, tags: null, new InstrumentAdvice<double> { HistogramBucketBoundaries = buckets });

    public void Admitted(double queueSeconds) => _queue.Record(queueSeconds, _model);
    public void FirstToken(double sinceArrivalSeconds) { _ttft.Record(sinceArrivalSeconds, _model); _generated.Add(1, _model); }
    public void NextToken(double gapSeconds) { _itl.Record(gapSeconds, _model); _generated.Add(1, _model); }

    /// <summary>A request has ended; <paramref name="decodeSeconds"/> runs from its first token to its last.</summary>
    public void Finished(string reason, int promptTokens, int outputTokens, double e2eSeconds, double decodeSeconds)
    {
        var finished = new KeyValuePair<string, object?>("finished_reason", reason);
        _requests.Add(1, _model, finished);
        _prompt.Add(promptTokens, _model);
        if (e2eSeconds > 0) _e2e.Record(e2eSeconds, _model);
        if (outputTokens > 1) _tpot.Record(decodeSeconds / (outputTokens - 1), _model);
    }

    /// <summary>A request that never reached a row (cancelled while queued, or refused at admission).</summary>
    public void Ended(string reason) => _requests.Add(1, _model, new KeyValuePair<string, object?>("finished_reason", reason));

    public void Drafted(long proposed, long accepted)
    {
        if (proposed <= 0) return;
        _proposed.Add(proposed, _model);
        _accepted.Add(accepted, _model);
    }

    public void Dispose() => _meter.Dispose();
}
