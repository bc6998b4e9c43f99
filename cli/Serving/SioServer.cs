using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using Sio.Generation;
using Sio.Serving;

namespace Sio.Cli.Serving;

/// <summary>Where and how `sio serve` listens.</summary>
/// <param name="Spinning">ONNX Runtime's idle threads spin between operators (faster steps; off when a draft model runs
/// beside the target, whatever this says), or sleep (kinder to other processes on the same cores).</param>
public sealed record ServerConfig(string ModelDir, string Host = "127.0.0.1", int Port = 8000, string? ApiKey = null, ServeOptions? Serve = null, string Provider = "cpu", bool Spinning = true);

/// <summary>
/// `sio serve`: core's <see cref="OpenAiEndpoints"/> over one model, with Prometheus metrics at /metrics.
/// On 127.0.0.1 no key is needed; on any other address an API key is required and checked on every endpoint.
/// </summary>
public static class SioServer
{
    public static WebApplication Build(ServerConfig config)
    {
        var key = OpenAiEndpoints.RequireKeyOffLoopback(config.Host, config.Port, config.ApiKey);
        var serve = config.Serve ?? new ServeOptions();
        var modelOptions = new ModelOptions { Provider = config.Provider, AllowSpinning = config.Spinning };
        var deployments = new Deployments(Deployment.Load(config.ModelDir, serve, modelOptions));
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://{(config.Host.Contains(':') ? $"[{config.Host}]" : config.Host)}:{config.Port}");
        builder.Services.AddSingleton(deployments);
        builder.Services.AddOpenTelemetry().WithMetrics(m => m.AddMeter(ServingMetrics.MeterName).AddPrometheusExporter());
        var app = builder.Build();
        app.Lifetime.ApplicationStopped.Register(deployments.Dispose);
        OpenAiEndpoints.UseApiKey(app, key);
        app.MapPrometheusScrapingEndpoint("/metrics");
        OpenAiEndpoints.Map(app, deployments, dir => Deployment.Load(dir, serve, modelOptions));
        return app;
    }
}
