using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Sio.Artifacts;
using Sio.Pipeline;

namespace Sio.Cli.Hosting;

/// <summary>
/// Starts an optimization when a model lands in the uploads container (a .zip, or a llama2.c .bin
/// that is not a tokenizer), with the host's default recipe, dataset and gates. The run id is derived
/// from the upload's name and sha256, so seeing the same upload again starts nothing new.
/// </summary>
public sealed class UploadWatcher(IObjectStore store, OptimizationApi api, OptimizationRequest defaults, TimeSpan interval, ILogger<UploadWatcher> log) : BackgroundService
{
    readonly HashSet<string> _seen = [];

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                foreach (var o in await store.ListAsync(Containers.Uploads, "", stoppingToken))
                {
                    var sha = o.Metadata.GetValueOrDefault(Containers.Sha256Key, "");
                    if (!ArtifactRepository.IsModelUpload(o.Name) || !_seen.Add(o.Name + "@" + sha)) continue;
                    var request = defaults with { Model = $"{Containers.Uploads}/{o.Name}" };
                    var id = "upload-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{o.Name}\n{sha}\n{request.InstanceId()}")))[..20];
                    var r = await api.StartAsync(request, "", id, stoppingToken);
                    log.LogInformation("upload {Name}: optimization {Status} {Body}", o.Name, r.Status, System.Text.Json.JsonSerializer.Serialize(r.Body));
                }
            }
            catch (Exception e) when (e is not OperationCanceledException) { log.LogWarning("uploads watcher: {Error}", e.Message); }
            try { await Task.Delay(interval, stoppingToken); } catch (OperationCanceledException) { }
        }
    }
}
