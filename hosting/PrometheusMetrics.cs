using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using Sio.Serving;

namespace Sio.Hosting;

/// <summary>
/// The /metrics route: OpenTelemetry's Prometheus exporter over sio's meter, as a plain request handler so that every
/// host (ASP.NET Core or a Function App's catch-all trigger) serves it from the same route table.
/// </summary>
public static class PrometheusMetrics
{
    /// <summary>Registers the meter provider with its Prometheus exporter.</summary>
    public static IServiceCollection AddSioMetrics(this IServiceCollection services)
    {
        services.AddOpenTelemetry().WithMetrics(m => m.AddMeter(ServingMetrics.MeterName).AddPrometheusExporter());
        return services;
    }

    /// <summary>A handler that answers every request it gets with the current scrape (built lazily: the meter provider starts with the host).</summary>
    public static RequestDelegate Handler(Func<IServiceProvider> services)
    {
        var scrape = new Lazy<RequestDelegate>(() =>
        {
            var app = new ApplicationBuilder(services());
            app.UseOpenTelemetryPrometheusScrapingEndpoint(meterProvider: null, predicate: _ => true, path: null, configureBranchedPipeline: null, optionsName: null);
            return app.Build();
        });
        return ctx => scrape.Value(ctx);
    }
}
