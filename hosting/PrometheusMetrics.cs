using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Sio.Hosting;

/// <summary>
/// The /metrics route: OpenTelemetry's Prometheus exporter over sio's meter (registered by <see cref="SioTelemetry"/>), as a plain request handler so that every
/// host (ASP.NET Core or a Function App's catch-all trigger) serves it from the same route table.
/// </summary>
public static class PrometheusMetrics
{
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
