using System.Reflection;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Sio.Pipeline;
using Sio.Serving;

namespace Sio.Hosting;

/// <summary>
/// What every host reports, through OpenTelemetry: sio's meter, served at /metrics in Prometheus's format, and — when
/// the standard <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> (or <c>OTEL_EXPORTER_OTLP_TRACES_ENDPOINT</c>) is set — the serving
/// and pipeline spans and the same metrics over OTLP (<c>OTEL_EXPORTER_OTLP_PROTOCOL</c> chooses grpc or http/protobuf).
/// The resource is <c>service.name</c> "sio" (or <c>OTEL_SERVICE_NAME</c>) with the host in <c>sio.host</c>.
/// </summary>
public static class SioTelemetry
{
    /// <summary>Whether an OTLP endpoint is configured in the environment.</summary>
    public static bool OtlpConfigured =>
        !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT")) || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"));

    /// <param name="host">Which host this is ("sio serve", "sio up", "inference Function App", …).</param>
    public static IServiceCollection AddSioTelemetry(this IServiceCollection services, string host)
    {
        var otel = services.AddOpenTelemetry().ConfigureResource(r => Resource(r, host));
        otel.WithMetrics(m =>
        {
            m.AddMeter(ServingMetrics.MeterName).AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0); // every scrape is fresh
            if (OtlpConfigured) m.AddOtlpExporter();
        });
        if (OtlpConfigured) otel.WithTracing(t => t.AddSource(ServingTraces.SourceName, PipelineTraces.SourceName).AddOtlpExporter());
        return services;
    }

    static void Resource(ResourceBuilder r, string host)
    {
        var version = typeof(SioTelemetry).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OTEL_SERVICE_NAME"))) r.AddService("sio", serviceVersion: version);
        r.AddAttributes([new("sio.host", host)]);
    }
}
