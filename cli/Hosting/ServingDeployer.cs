using Sio.Artifacts;
using Sio.Generation;
using Sio.Pipeline;
using Sio.Serving;
using Sio.Speculative;

namespace Sio.Cli.Hosting;

/// <summary>
/// The self-host's answer to a deployment event: the model artifact is fetched from the store,
/// loaded beside the live one with the manifest's drafter, and swapped in (in-flight requests finish on the old model).
/// </summary>
public sealed class ServingDeployer(IObjectStore store, string workDir, Deployments deployments, ServeOptions serve, ModelOptions modelOptions) : IDeploymentEvents
{
    /// <summary>Resolves draft:artifacts/models/KEY and datastore:artifacts/… drafters to local paths (set by the host once the pipeline steps exist).</summary>
    public Func<string, Task<string>> ResolveDrafter { get; set; } = Task.FromResult;
    readonly SemaphoreSlim _gate = new(1, 1);
    public string? LiveId { get; private set; }

    public async Task DeployAsync(DeploymentManifest manifest, CancellationToken ct = default)
    {
        await _gate.WaitAsync(ct);
        try
        {
            if (LiveId == manifest.Id && deployments.Current is not null) return; // the same event twice
            var name = new string(manifest.Variant.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' ? c : '-').ToArray());
            var folder = Path.Combine(workDir, "serving", $"{name}-{manifest.ModelKey[..8]}");
            if (!await ArtifactFolders.GetAsync(store, Containers.Artifacts, PipelineSteps.ModelsPrefix, manifest.ModelKey, folder, ct))
                throw new SioException($"deployment {manifest.Id}: model artifact {manifest.ModelKey} is missing from {store.Location}");
            var options = serve with { Speculative = new SpeculativeOptions { Drafter = await ResolveDrafter(manifest.Drafter) } };
            deployments.Swap(Deployment.Load(folder, options, modelOptions));
            LiveId = manifest.Id;
        }
        finally { _gate.Release(); }
    }
}
