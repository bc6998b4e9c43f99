using System.Diagnostics.Metrics;

namespace Sio.Serving;

/// <summary>
/// The serving engine's instruments (System.Diagnostics.Metrics, meter "Sio.Serving"), exported by
/// the server as Prometheus metrics: queue depth and batch size (gauges), generated tokens and
/// requests (counters; tokens/s is their rate), time to first token and inter-token latency
/// (histograms, ms), draft tokens proposed and accepted (the acceptance rate is their ratio).
/// </summary>
public sealed class ServingMetrics : IDisposable
{
    public const string MeterName = "Sio.Serving";
    readonly Meter _meter = new(MeterName);
    readonly Counter<long> _tokens, _requests, _proposed, _accepted;
    readonly Histogram<double> _ttft, _itl;

    public ServingMetrics(Func<int> queueDepth, Func<int> batchSize)
    {
        _meter.CreateObservableGauge("sio_queue_depth", queueDepth, description: "Requests waiting for a slot");
        _meter.CreateObservableGauge("sio_batch_size", batchSize, description: "Requests decoding now");
        _tokens = _meter.CreateCounter<long>("sio_generated_tokens", description: "Tokens generated");
        _requests = _meter.CreateCounter<long>("sio_requests", description: "Requests finished, by outcome");
        _proposed = _meter.CreateCounter<long>("sio_draft_tokens_proposed", description: "Draft tokens proposed");
        _accepted = _meter.CreateCounter<long>("sio_draft_tokens_accepted", description: "Draft tokens accepted");
        _ttft = _meter.CreateHistogram<double>("sio_time_to_first_token", "ms", "Time from admission to the first token");
        _itl = _meter.CreateHistogram<double>("sio_inter_token_latency", "ms", "Time between tokens of a request");
    }

    public void FirstToken(double ms) { _ttft.Record(ms); _tokens.Add(1); }
    public void NextToken(double ms) { _itl.Record(ms); _tokens.Add(1); }
    public void Finished(string outcome) => _requests.Add(1, new KeyValuePair<string, object?>("outcome", outcome));
    public void Drafted(long proposed, long accepted) { if (proposed > 0) { _proposed.Add(proposed); _accepted.Add(accepted); } }

    public void Dispose() => _meter.Dispose();
}
