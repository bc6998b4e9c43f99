using System.Diagnostics.Metrics;

using Sio.Serving;

namespace Sio.Hosting;

/// <summary>Every HTTP answer a host gives, counted by status class (2xx, 4xx, 5xx) and status (429 and 401 stand out in the code label).</summary>
public static class HttpMetrics
{
    static readonly Meter Meter = new(ServingMetrics.MeterName);
    static readonly Counter<long> Responses = Meter.CreateCounter<long>("sio_http_responses", description: "HTTP answers, by status class and code");

    public static void Answered(int status) => Responses.Add(1,
        new KeyValuePair<string, object?>("class", $"{status / 100}xx"), new KeyValuePair<string, object?>("code", status.ToString()));
}
