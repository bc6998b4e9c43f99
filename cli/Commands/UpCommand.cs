using System.CommandLine;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;
using Sio.Cli.Hosting;
using Sio.Serving;
using Sio.Speculative;

namespace Sio.Cli;

public static class UpCommand
{
    public static Command Create()
    {
        var host = new Option<string>("--host") { Description = "Address to listen on; any but loopback requires --api-key.", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port to listen on.", DefaultValueFactory = _ => 8000 };
        var key = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' on every endpoint but /healthz and the console page (default: $SIO_API_KEY, or the file $SIO_API_KEY_FILE names; prefer those: a command line is visible to every local user)." };
        var taskHub = new Option<string?>("--task-hub") { Description = "Azure Storage connection string for durable orchestration state (UseDevelopmentStorage=true for Azurite; default $SIO_TASK_HUB, else in memory)." };
        var taskHubName = new Option<string>("--task-hub-name") { Description = "Task hub name in that account.", DefaultValueFactory = _ => "sio" };
        var recovery = new Option<double?>("--recovery-seconds") { Description = "Azure Storage lease and queue visibility timeouts: how soon a restarted host resumes a dead one's work." };
        var maxActivities = new Option<int?>("--max-activities") { Description = "Activities this worker runs at once on an Azure Storage task hub (default: 10 per core); with several `sio up` workers on one hub, 1 spreads a run's steps and benchmarks over them." };
        var watch = new Option<bool>("--watch-uploads") { Description = "Start an optimization (with --recipe, --dataset, --gate) whenever a model lands in the uploads container." };
        var dataset = new Option<string?>("--dataset") { Description = "Dataset for runs started by uploads (uploads/NAME or a local path)." };
        var concurrent = new Option<int>("--max-concurrent") { Description = "Requests decoded at the same time by the served model.", DefaultValueFactory = _ => 4 };
        var queue = new Option<int>("--queue") { Description = "Requests that may wait for a slot; beyond it the server answers 429.", DefaultValueFactory = _ => 32 };
        var provider = new Option<string>("--provider") { Description = "Execution provider for serving: cpu or cuda.", DefaultValueFactory = _ => "cpu" };
        var maxUpload = new Option<long>("--max-upload-mb") { Description = "Largest upload accepted, in MiB (1–1048576).", DefaultValueFactory = _ => 8192 };
        maxUpload.Validators.Add(r => { if (r.GetValueOrDefault<long>() is < 1 or > 1 << 20) r.AddError($"--max-upload-mb must be from 1 to 1048576, got {r.GetValueOrDefault<long>()}"); });
        var allowLocal = new Option<bool>("--allow-local-paths") { Description = "Let HTTP requests name local files and folders (models, datasets, POST /api/deployments {\"model\": DIR}); off: they may name only store objects (uploads/NAME, artifacts/models/KEY)." };
        var shared = new PipelineOptionsCli();
        var cmd = new Command("up", "Self-hosted sio: a web console at /, the optimization API (/api/optimizations, /api/uploads, /api/models, /api/deployments), its Durable Task orchestrations, and OpenAI-compatible serving of the deployed model (/v1/…), on one machine, until stopped.")
        {
            host, port, key, taskHub, taskHubName, recovery, maxActivities, watch, dataset, concurrent, queue, provider, maxUpload, allowLocal,
        };
        foreach (var o in shared.All) cmd.Options.Add(o);
        cmd.SetAction(async (p, ct) =>
        {
            Pipeline.OptimizationRequest? defaults = null;
            if (p.GetValue(watch))
            {
                var ds = p.GetValue(dataset) ?? throw new SioException("--watch-uploads needs --dataset (the data runs started by uploads calibrate and measure on)");
                defaults = shared.Request(p, "uploads/placeholder", null, ds);
                if (defaults.Problems() is { Count: > 0 } problems) throw new SioException(string.Join("; ", problems.SelectMany(x => x.Value)));
            }
            var config = new PipelineHostConfig
            {
                Host = p.GetValue(host)!, Port = p.GetValue(port), ApiKey = p.GetValue(key), Store = p.GetValue(shared.Store), WorkDir = p.GetValue(shared.WorkDir),
                TaskHubConnection = p.GetValue(taskHub) ?? Env("SIO_TASK_HUB"), TaskHubName = p.GetValue(taskHubName)!, AllowLocalPaths = p.GetValue(allowLocal),
                RecoveryTimeout = p.GetValue(recovery) is double s ? TimeSpan.FromSeconds(s) : null,
                MaxConcurrentActivities = p.GetValue(maxActivities) is int m && m > 0 ? m : p.GetValue(maxActivities) is int bad ? throw new SioException($"--max-activities must be ≥ 1, got {bad}") : null,
                Serve = new ServeOptions { MaxConcurrent = p.GetValue(concurrent), QueueCapacity = p.GetValue(queue) },
                Provider = p.GetValue(provider)!, UploadDefaults = defaults, MaxUploadBytes = p.GetValue(maxUpload) << 20,
                LogLevel = Microsoft.Extensions.Logging.LogLevel.Information,
            };
            var app = PipelineHost.Build(config);
            var listen = ListenAddress.Parse(config.Host, config.Port);
            p.InvocationConfiguration.Output.WriteLine($"sio up on {listen.Url} (store {Artifacts.ObjectStores.Open(config.Store).Location}; orchestrations {(config.TaskHubConnection is null ? "in memory" : "in Azure Storage")}; {(listen.IsLoopback ? "this machine only" : "every caller needs the API key")}); Ctrl+C stops");
            await app.StartAsync(ct);
            await app.WaitForShutdownAsync(ct);
            return 0;
        });
        return cmd;
    }

    static string? Env(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : null;
}
