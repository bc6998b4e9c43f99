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
/// <param name="AllowLocalPaths">POST /admin/deployments may load any local model folder (off: the route answers 403).</param>
public sealed record ServerConfig(string ModelDir, string Host = "127.0.0.1", int Port = 8000, string? ApiKey = null, ServeOptions? Serve = null, string Provider = "cpu", bool Spinning = true,
    bool AllowLocalPaths = false);

/// <summary>
/// `sio serve`: core's <see cref="OpenAiEndpoints"/> over one model, with Prometheus metrics at /metrics.
/// On 127.0.0.1 no key is needed; on any other address an API key is required and checked on every endpoint.
/// </summary>
public static class SioServer
{
    public static WebApplication Build(ServerConfig config)
    {
        var listen = ListenAddress.Parse(config.Host, config.Port);
        var key = listen.RequireKey(config.ApiKey);
        var serve = config.Serve ?? new ServeOptions();
        var modelOptions = new ModelOptions { Provider = config.Provider, AllowSpinning = config.Spinning };
        var deployments = new Deployments(Deployment.Load(config.ModelDir, serve, modelOptions));
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(listen.Address, listen.Port));
        builder.Services.AddSingleton(deployments);
        builder.Services.AddOpenTelemetry().WithMetrics(m => m.AddMeter(ServingMetrics.MeterName).AddPrometheusExporter());
        var app = builder.Build();
        app.Lifetime.ApplicationStopped.Register(deployments.Dispose);
        new Hosting.AccessPolicy(key).Apply(app);
        app.MapPrometheusScrapingEndpoint("/metrics");
        OpenAiEndpoints.Map(app, deployments, config.AllowLocalPaths ? dir => Deployment.Load(dir, serve, modelOptions) : null);
        return app;
    }
}
