using System.Collections.Concurrent;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Sio.Tests;

/// <summary>
/// A local OpenTelemetry collector endpoint: a Kestrel server on 127.0.0.1 that takes OTLP over HTTP/protobuf
/// (POST /v1/traces, /v1/metrics, /v1/logs), as OpenTelemetry's exporters send it, and decodes the spans it receives
/// (trace and span ids, parent, name, kind, times, attributes, status) and the resource attributes they came with. The
/// protobuf is read field by field from the wire format of opentelemetry-proto's trace.proto.
/// </summary>
public sealed class OtlpReceiver : IAsyncDisposable
{
    public sealed record Span(string TraceId, string SpanId, string ParentSpanId, string Name, int Kind, ulong StartNs, ulong EndNs,
        IReadOnlyDictionary<string, object> Attributes, IReadOnlyDictionary<string, object> Resource, int StatusCode);

    readonly WebApplication _app;
    readonly ConcurrentQueue<Span> _spans = new();
    int _metricExports;

    public OtlpReceiver()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0));
        _app = builder.Build();
        _app.MapPost("/v1/traces", async ctx => { foreach (var s in ReadTraces(await Body(ctx))) _spans.Enqueue(s); ctx.Response.ContentType = "application/x-protobuf"; });
        _app.MapPost("/v1/metrics", async ctx => { await Body(ctx); Interlocked.Increment(ref _metricExports); ctx.Response.ContentType = "application/x-protobuf"; });
        _app.MapPost("/v1/logs", async ctx => { await Body(ctx); ctx.Response.ContentType = "application/x-protobuf"; });
        _app.StartAsync().GetAwaiter().GetResult();
        Endpoint = new Uri(_app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
    }

    public Uri Endpoint { get; }
    public IReadOnlyList<Span> Spans => [.. _spans];
    public int MetricExports => Volatile.Read(ref _metricExports);

    /// <summary>The environment that points a process's OpenTelemetry exporters here, exporting spans within 100 ms.</summary>
    public Dictionary<string, string> Environment => new()
    {
        ["OTEL_EXPORTER_OTLP_ENDPOINT"] = Endpoint.ToString().TrimEnd('/'),
        ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
        ["OTEL_BSP_SCHEDULE_DELAY"] = "100",
        ["OTEL_METRIC_EXPORT_INTERVAL"] = "500",
    };

    /// <summary>Waits until the spans received satisfy <paramref name="done"/> (or fails after the timeout).</summary>
    public async Task<IReadOnlyList<Span>> WaitAsync(Func<IReadOnlyList<Span>, bool> done, TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        while (!done(Spans))
        {
            if (DateTime.UtcNow > until) throw new TimeoutException($"the spans never arrived; got: {string.Join(", ", Spans.Select(s => s.Name))}");
            await Task.Delay(100);
        }
        return Spans;
    }

    static async Task<byte[]> Body(HttpContext ctx)
    {
        using var m = new MemoryStream();
        await ctx.Request.Body.CopyToAsync(m);
        return m.ToArray();
    }

    // ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
    // ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }  Resource { repeated KeyValue attributes = 1; }
    // ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; }
    static IEnumerable<Span> ReadTraces(byte[] body)
    {
        foreach (var (f, rs) in Fields(body))
        {
            if (f != 1) continue;
            var resource = new Dictionary<string, object>();
            var scopes = new List<byte[]>();
            foreach (var (g, v) in Fields((byte[])rs))
            {
                if (g == 1) foreach (var (h, kv) in Fields((byte[])v)) { if (h == 1) Add(resource, (byte[])kv); }
                if (g == 2) scopes.Add((byte[])v);
            }
            foreach (var scope in scopes)
                foreach (var (g, span) in Fields(scope))
                    if (g == 2) yield return ReadSpan((byte[])span, resource);
        }
    }

    // Span { bytes trace_id = 1; bytes span_id = 2; bytes parent_span_id = 4; string name = 5; SpanKind kind = 6;
    //        fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8; repeated KeyValue attributes = 9; Status status = 15; }
    static Span ReadSpan(byte[] span, IReadOnlyDictionary<string, object> resource)
    {
        string trace = "", id = "", parent = "", name = "";
        int kind = 0, status = 0;
        ulong start = 0, end = 0;
        var attributes = new Dictionary<string, object>();
        foreach (var (f, v) in Fields(span))
            switch (f)
            {
                case 1: trace = Convert.ToHexStringLower((byte[])v); break;
                case 2: id = Convert.ToHexStringLower((byte[])v); break;
                case 4: parent = Convert.ToHexStringLower((byte[])v); break;
                case 5: name = Encoding.UTF8.GetString((byte[])v); break;
                case 6: kind = (int)(ulong)v; break;
                case 7: start = (ulong)v; break;
                case 8: end = (ulong)v; break;
                case 9: Add(attributes, (byte[])v); break;
                case 15: foreach (var (g, c) in Fields((byte[])v)) if (g == 3) status = (int)(ulong)c; break; // Status { string message = 2; StatusCode code = 3; }
            }
        return new Span(trace, id, parent, name, kind, start, end, attributes, resource, status);
    }

    // KeyValue { string key = 1; AnyValue value = 2; }
    // AnyValue { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; ArrayValue array_value = 5; }
    static void Add(Dictionary<string, object> into, byte[] keyValue)
    {
        string key = "";
        object value = "";
        foreach (var (f, v) in Fields(keyValue))
            if (f == 1) key = Encoding.UTF8.GetString((byte[])v);
            else if (f == 2) value = AnyValue((byte[])v);
        into[key] = value;
    }

    static object AnyValue(byte[] any)
    {
        foreach (var (f, v) in Fields(any))
            switch (f)
            {
                case 1: return Encoding.UTF8.GetString((byte[])v);
                case 2: return (ulong)v != 0;
                case 3: return (long)(ulong)v;
                case 4: return BitConverter.UInt64BitsToDouble((ulong)v);
                case 5: return Fields((byte[])v).Where(x => x.Field == 1).Select(x => AnyValue((byte[])x.Value)).ToArray(); // ArrayValue { repeated AnyValue values = 1; }
            }
        return "";
    }

    /// <summary>A message's fields in order: varints and fixed64s as ulong, length-delimited ones as bytes.</summary>
    static List<(int Field, object Value)> Fields(byte[] message)
    {
        var fields = new List<(int, object)>();
        int at = 0;
        while (at < message.Length)
        {
            ulong tag = Varint(message, ref at);
            int field = (int)(tag >> 3);
            switch ((int)(tag & 7))
            {
                case 0: fields.Add((field, Varint(message, ref at))); break;
                case 1: fields.Add((field, BitConverter.ToUInt64(message, at))); at += 8; break;
                case 2:
                    int n = (int)Varint(message, ref at);
                    fields.Add((field, message[at..(at + n)]));
                    at += n;
                    break;
                case 5: fields.Add((field, (ulong)BitConverter.ToUInt32(message, at))); at += 4; break;
                default: throw new InvalidDataException($"unexpected protobuf wire type {tag & 7} for field {field}");
            }
        }
        return fields;
    }

    static ulong Varint(byte[] b, ref int at)
    {
        ulong value = 0;
        for (int shift = 0; ; shift += 7)
        {
            byte x = b[at++];
            value |= (ulong)(x & 0x7f) << shift;
            if (x < 0x80) return value;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
