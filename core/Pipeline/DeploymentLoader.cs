using Sio.Generation;
using Sio.Serving;
using Sio.Speculative;

namespace Sio.Pipeline;

/// <summary>
/// Serves a deployment manifest: the model artifact (materialized once in the work folder) is loaded beside the live
/// model with the manifest's drafter (draft models and datastores are artifacts too) and its serving settings (engine,
/// concurrency limit, draft length, where it names them) and swapped in; in-flight requests
/// finish on the old model. The deployment event of `sio up`, and the inference app's refresh.
/// </summary>
public sealed class DeploymentLoader(Deployments deployments, ServeOptions serve, ModelOptions modelOptions, ArtifactRepository artifacts) : IDeploymentEvents, IDisposable
{
    readonly SemaphoreSlim _gate = new(1, 1);

    public string? LiveId { get; private set; }

    public async Task DeployAsync(DeploymentManifest manifest, CancellationToken ct = default)
    {
        await _gate.WaitAsync(ct);
        try
        {
            if (LiveId == manifest.Id && deployments.Current is not null) return; // the same event twice
            var folder = await artifacts.MaterializeAsync(manifest.ModelKey);
            var s = manifest.Serving ?? new ServingSettings();
            var options = serve with
            {
                Speculative = serve.Speculative with { Drafter = await artifacts.LocalDrafterAsync(manifest.Drafter), DraftTokens = s.DraftTokens ?? serve.Speculative.DraftTokens },
                MaxConcurrent = s.MaxConcurrent ?? serve.MaxConcurrent,
            };
            deployments.Swap(Deployment.Load(folder, options, modelOptions with { Engine = s.Engine ?? modelOptions.Engine }, manifest.ServedModelId));
            LiveId = manifest.Id;
        }
        finally { _gate.Release(); }
    }

    public void Dispose() => _gate.Dispose();
}
