using System.Net;
using System.Net.Sockets;
using DurableTask.AzureStorage;
using DurableTask.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.DurableTask.Client;
using Microsoft.DurableTask.Testing.Sidecar;
using Microsoft.DurableTask.Testing.Sidecar.Grpc;
using Microsoft.DurableTask.Worker;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Sio.Artifacts;
using Sio.Generation;
using Sio.Hosting;
using Sio.Pipeline;
using Sio.Serving;

namespace Sio.Cli.Hosting;

/// <summary>How `sio up` (and `sio optimize`) run the pipeline on one machine.</summary>
public sealed record PipelineHostConfig
{
    public string Host { get; init; } = "127.0.0.1";
    public int Port { get; init; } = 8000;
    public string? ApiKey { get; init; }
    /// <summary>Serve the HTTP API (false: only the orchestration sidecar, for `sio optimize`).</summary>
    public bool Api { get; init; } = true;
    /// <summary>--store: a folder (default $SIO_HOME/store) or a Blob Storage connection string.</summary>
    public string? Store { get; init; }
    /// <summary>--task-hub: null for the in-memory orchestration service, or an Azure Storage connection string (durable across restarts).</summary>
    public string? TaskHubConnection { get; init; }
    public string TaskHubName { get; init; } = "sio";
    /// <summary>Lease and queue visibility timeouts of the Azure Storage backend: how soon a new process takes over a dead one's work.</summary>
    public TimeSpan? RecoveryTimeout { get; init; }
    /// <summary>Activities this process runs at once (Azure Storage task hub; null: the backend's default, 10 per core).
    /// With several workers on one hub, a low number leaves work for the others.</summary>
    public int? MaxConcurrentActivities { get; init; }
    public string? WorkDir { get; init; }
    public ServeOptions Serve { get; init; } = new();
    public string Provider { get; init; } = "cpu";
    /// <summary>Start a run with these defaults when a model is uploaded (null: no watcher).</summary>
    public OptimizationRequest? UploadDefaults { get; init; }
    public TimeSpan WatchInterval { get; init; } = TimeSpan.FromSeconds(2);
    public long MaxUploadBytes { get; init; } = 8L << 30;
    /// <summary>Requests over HTTP may name local paths (models, datasets, folders to deploy): off unless the operator opts in
    /// (--allow-local-paths); always on for `sio optimize`, whose paths come from its own command line.</summary>
    public bool AllowLocalPaths { get; init; }
    public LogLevel LogLevel { get; init; } = LogLevel.Warning;
}

/// <summary>
/// The self-hosted pipeline: ASP.NET Core serving the optimization API and the OpenAI-compatible
/// endpoints, with a Durable Task worker and client that talk gRPC to an in-process sidecar
/// (TaskHubGrpcServer) over the in-memory or the Azure Storage orchestration service.
/// </summary>
public static class PipelineHost
{
    public static WebApplication Build(PipelineHostConfig config)
    {
        var listen = ListenAddress.Parse(config.Host, config.Port);
        var key = config.Api ? listen.RequireKey(config.ApiKey) : null;
        var store = ObjectStores.Open(config.Store);
        var workDir = Path.GetFullPath(config.WorkDir ?? Path.Combine(SioHome.Path, "work"));
        var modelOptions = new ModelOptions { Provider = config.Provider };
        var deployments = new Deployments();
        bool localPaths = config.AllowLocalPaths || !config.Api;
        var options = new PipelineOptions { Store = store, WorkDir = workDir, AllowLocalPaths = localPaths, ModelOptions = modelOptions, MaxUploadBytes = config.MaxUploadBytes };

        // The Durable Task sidecar: a loopback gRPC listener that serves only its gRPC service, only to this process's
        // worker and client, which present a secret made for this process (see AccessPolicy).
        int sidecarPort = FreePort();
        var sidecarSecret = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders().AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(config.LogLevel)
            .AddFilter("Microsoft.AspNetCore", LogLevel.Warning).AddFilter("Grpc", LogLevel.Warning).AddFilter("Microsoft.DurableTask.Worker.Grpc", LogLevel.Warning);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(IPAddress.Loopback, sidecarPort, o => o.Protocols = HttpProtocols.Http2);
            if (config.Api) k.Listen(listen.Address, listen.Port, o => o.Protocols = HttpProtocols.Http1AndHttp2);
        });
        var services = builder.Services;
        services.Configure<Microsoft.Extensions.Hosting.HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(5)); // the worker's open work-item stream would hold shutdown for 30 s
        services.AddSingleton<IOrchestrationService>(sp => OrchestrationService(config, sp.GetRequiredService<ILoggerFactory>()));
        services.AddSingleton(sp => (IOrchestrationServiceClient)sp.GetRequiredService<IOrchestrationService>());
        services.AddGrpc(o => o.IgnoreUnknownServices = true); // an unknown path gets the route table's 404, not a gRPC answer
        services.AddSingleton<TaskHubGrpcServer>();
        services.AddSioPipeline(options);
        services.AddSingleton(store);
        services.AddSingleton(deployments);
        services.AddSingleton(sp => new DeploymentLoader(deployments, config.Serve, modelOptions, sp.GetRequiredService<ArtifactRepository>()));
        if (config.Api) services.AddSingleton<IDeploymentEvents>(sp => sp.GetRequiredService<DeploymentLoader>()); // `sio optimize` deploys nothing in-process
        services.AddSingleton(sp => new OptimizationApi(sp.GetRequiredService<DurableTaskClient>(), sp.GetRequiredService<ArtifactRepository>(),
            sp.GetRequiredService<ImportModel>(), sp.GetRequiredService<RaiseDeployment>(),
            config.TaskHubConnection is null ? null : RunClaims.ForTaskHub(config.TaskHubConnection, config.TaskHubName)));
        // one channel each: the worker connects while the listener may still be starting, and a shared channel would
        // hold the client in the worker's connection back-off
        var sidecar = $"http://127.0.0.1:{sidecarPort}";
        services.AddDurableTaskWorker(b => { b.AddTasks(PipelineTasks.Register); b.UseGrpc(SidecarChannel(sidecar, sidecarSecret)); });
        services.AddDurableTaskClient(b => b.UseGrpc(SidecarChannel(sidecar, sidecarSecret)));
        if (config.UploadDefaults is { } defaults)
            services.AddHostedService(sp => new UploadWatcher(store, sp.GetRequiredService<OptimizationApi>(), defaults, config.WatchInterval,
                sp.GetRequiredService<ILogger<UploadWatcher>>()));
        services.AddSioTelemetry(config.Api ? "sio up" : "sio optimize");

        var app = builder.Build();
        var orchestration = app.Services.GetRequiredService<IOrchestrationService>();
        orchestration.CreateIfNotExistsAsync().GetAwaiter().GetResult();
        app.Lifetime.ApplicationStopped.Register(deployments.Dispose);
        new AccessPolicy(key, sidecarPort, sidecarSecret).Apply(app);
        app.MapGrpcService<TaskHubGrpcServer>();
        if (config.Api)
        {
            var api = app.Services.GetRequiredService<OptimizationApi>();
            app.MapApiRoutes(ApiRoutes.Table(new HostServices
            {
                Name = "sio up", Pipeline = _ => api, Deployments = deployments, Metrics = PrometheusMetrics.Handler(() => app.Services),
                LoadFolder = localPaths ? dir => Deployment.Load(dir, config.Serve, modelOptions) : null,
            }));
            // A restarted host serves what was live before.
            app.Lifetime.ApplicationStarted.Register(() => _ = Task.Run(async () =>
            {
                try
                {
                    if (DeploymentManifest.Parse(await store.GetTextAsync(Containers.Deployments, DeploymentManifest.Current)) is { } live) await app.Services.GetRequiredService<DeploymentLoader>().DeployAsync(live);
                }
                catch (Exception e) { app.Logger.LogWarning("could not restore the live deployment: {Error}", e.Message); }
            }));
        }
        return app;
    }

    static IOrchestrationService OrchestrationService(PipelineHostConfig config, ILoggerFactory logs)
    {
        if (config.TaskHubConnection is null) return new InMemoryOrchestrationService(logs);
        var settings = new AzureStorageOrchestrationServiceSettings
        {
            StorageAccountClientProvider = new StorageAccountClientProvider(config.TaskHubConnection),
            TaskHubName = config.TaskHubName, PartitionCount = 1, LoggerFactory = logs,
        };
        if (config.RecoveryTimeout is { } t)
        {
            settings.LeaseInterval = t;
            settings.LeaseRenewInterval = t / 3;
            settings.LeaseAcquireInterval = t / 3;
            settings.ControlQueueVisibilityTimeout = t;
            settings.WorkItemQueueVisibilityTimeout = t;
            settings.MaxQueuePollingInterval = t / 4; // an idle worker notices new work within a quarter of the recovery time
        }
        if (config.MaxConcurrentActivities is int n) settings.MaxConcurrentTaskActivityWorkItems = n;
        return new AzureStorageOrchestrationService(settings);
    }

    /// <summary>A gRPC channel to the sidecar whose every call carries the process's sidecar secret.</summary>
    static Grpc.Net.Client.GrpcChannel SidecarChannel(string address, string secret) =>
        Grpc.Net.Client.GrpcChannel.ForAddress(address, new Grpc.Net.Client.GrpcChannelOptions
        {
            HttpHandler = new SecretHeader(secret) { InnerHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true } },
        });

    sealed class SecretHeader(string secret) : DelegatingHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
        {
            request.Headers.TryAddWithoutValidation(AccessPolicy.SidecarHeader, secret);
            return base.SendAsync(request, ct);
        }
    }

    static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
