using Sio.Artifacts;
using Sio.Generation;
using Sio.Pipeline;
using Sio.Serving;
using Sio.Speculative;

namespace Sio.Functions;

/// <summary>Keeps the served model equal to deployments/current.json: fetch the artifact, load it beside the old one, swap.</summary>
public sealed class LiveDeployment(IObjectStore store, string workDir, Deployments deployments, ServeOptions serve, ModelOptions modelOptions)
{
    readonly SemaphoreSlim _gate = new(1, 1);
    string? _live;

    public async Task RefreshAsync(CancellationToken ct = default)
    {
        await _gate.WaitAsync(ct);
        try
        {
            var manifest = DeploymentManifest.Parse(await store.GetTextAsync(Containers.Deployments, DeploymentManifest.Current, ct));
            if (manifest is null || manifest.Id == _live) return;
            var folder = Path.Combine(workDir, manifest.ModelKey);
            if (!await ArtifactFolders.GetAsync(store, Containers.Artifacts, PipelineSteps.ModelsPrefix, manifest.ModelKey, folder, ct))
                throw new SioException($"deployment {manifest.Id}: model artifact {manifest.ModelKey} is missing");
            deployments.Swap(Deployment.Load(folder, serve with { Speculative = new SpeculativeOptions { Drafter = manifest.Drafter } }, modelOptions));
            _live = manifest.Id;
        }
        finally { _gate.Release(); }
    }
}
