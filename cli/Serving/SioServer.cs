using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Sio.Generation;
using Sio.Hosting;
using Sio.Serving;

namespace Sio.Cli.Serving;

/// <summary>Where and how `sio serve` listens.</summary>
/// <param name="Spinning">ONNX Runtime's idle threads spin between operators (faster steps; beside a draft model, only
/// within each run), or sleep (kinder to other processes on the same cores).</param>
/// <param name="AllowLocalPaths">POST /api/deployments {"model": FOLDER} may load any local model folder (off: the route answers 403).</param>
public sealed record ServerConfig(string ModelDir, string Host = "127.0.0.1", int Port = 8000, string? ApiKey = null, ServeOptions? Serve = null, string Provider = "cpu", bool Spinning = true,
    bool AllowLocalPaths = false);

/// <summary>
/// `sio serve`: the route table (<see cref="ApiRoutes"/>) over one model; the pipeline routes answer 501.
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
        builder.Services.AddSioTelemetry("sio serve");
        var app = builder.Build();
        app.Lifetime.ApplicationStopped.Register(deployments.Dispose);
        new Hosting.AccessPolicy(key).Apply(app);
        app.MapApiRoutes(ApiRoutes.Table(new HostServices
        {
            Name = "sio serve", Deployments = deployments, Metrics = PrometheusMetrics.Handler(() => app.Services),
            LoadFolder = config.AllowLocalPaths ? dir => Deployment.Load(dir, serve, modelOptions) : null,
        }));
        return app;
    }
}
