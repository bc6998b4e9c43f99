using Sio.Artifacts;
using Sio.Pipeline;

namespace Sio.Functions;

/// <summary>Keeps the served model equal to deployments/current.json (the deployment event's blob).</summary>
public sealed class LiveDeployment(IObjectStore store, DeploymentLoader loader)
{
    public async Task RefreshAsync(CancellationToken ct = default)
    {
        if (DeploymentManifest.Parse(await store.GetTextAsync(Containers.Deployments, DeploymentManifest.Current, ct)) is { } manifest)
            await loader.DeployAsync(manifest, ct);
    }
}
