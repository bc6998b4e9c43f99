using Sio.Artifacts;
using Sio.Generation;
using Sio.Pipeline;
using Sio.Serving;
using Sio.Speculative;

namespace Sio.Functions;

/// <summary>Keeps the served model equal to deployments/current.json: fetch the artifact, load it beside the old one, swap.</summary>
public sealed class LiveDeployment(PipelineSteps steps, Deployments deployments, ServeOptions serve, ModelOptions modelOptions)
{
    readonly SemaphoreSlim _gate = new(1, 1);
    string? _live;

    public async Task RefreshAsync(CancellationToken ct = default)
    {
        await _gate.WaitAsync(ct);
        try
        {
            var manifest = DeploymentManifest.Parse(await steps.Options.Store.GetTextAsync(Containers.Deployments, DeploymentManifest.Current, ct));
            if (manifest is null || manifest.Id == _live) return;
            var folder = await steps.MaterializeAsync(manifest.ModelKey);
            var drafter = await steps.LocalDrafter(manifest.Drafter); // draft models and datastores are artifacts too
            deployments.Swap(Deployment.Load(folder, serve with { Speculative = new SpeculativeOptions { Drafter = drafter } }, modelOptions));
            _live = manifest.Id;
        }
        finally { _gate.Release(); }
    }
}
