using System.Text.Json;
using Microsoft.DurableTask;
using Sio.Artifacts;

namespace Sio.Pipeline;

/// <summary>The publish step: reports/RUN/report.json and report.md, then (when the gate passed and deploying is asked for) deployments/RUN.json, last.</summary>
public sealed class PublishResult(ArtifactRepository artifacts) : TaskActivity<PublishInput, Published>
{
    public override Task<Published> RunAsync(TaskActivityContext context, PublishInput input) => PipelineTraces.Step("publish", context, input.RunId, () => RunAsync(input));

    public async Task<Published> RunAsync(PublishInput input)
    {
        var reportName = $"{input.RunId}/report.json";
        var chosen = input.Variants.FirstOrDefault(v => v.Variant == input.Decision.Chosen);
        var check = input.Decision.Checks.FirstOrDefault(c => c.Variant == input.Decision.Chosen);
        var report = new
        {
            runId = input.RunId, request = input.Request, passed = input.Decision.Passed, chosen = input.Decision.Chosen,
            gate = input.Decision, variants = input.Variants, presets = RunReport.Presets(input.Variants, input.Decision), createdUtc = DateTime.UtcNow,
        };
        await artifacts.Store.PutTextAsync(Containers.Reports, $"{input.RunId}/report.md", RunReport.Markdown(input));
        await artifacts.Store.PutTextAsync(Containers.Reports, reportName, JsonSerializer.Serialize(report, OptimizationRequest.Json));
        string? deployment = null;
        if (chosen is not null && check is not null && input.Request.Deploy)
        {
            deployment = $"{input.RunId}.json";
            var manifest = DeploymentManifest.For(input.RunId, input.RunId, chosen, check.Speedup, check.PricePerMillionTokens);
            await artifacts.Store.PutTextAsync(Containers.Deployments, deployment, manifest.ToJson());
        }
        return new Published($"{Containers.Reports}/{reportName}", deployment is null ? null : $"{Containers.Deployments}/{deployment}");
    }
}

/// <summary>The deploy step: makes a published deployment the live one (deployments/current.json), then raises the deployment event. Repeating it is harmless.</summary>
/// <param name="events">Who serves the deployment in this process (`sio up`'s loader); null where the blob itself is the event (Azure).</param>
public sealed class RaiseDeployment(ArtifactRepository artifacts, IDeploymentEvents? events = null) : TaskActivity<string, bool>
{
    public override Task<bool> RunAsync(TaskActivityContext context, string manifest) => PipelineTraces.Step("deploy", context, null, () => RunAsync(manifest));

    public async Task<bool> RunAsync(string manifestName)
    {
        var store = artifacts.Store;
        var name = manifestName.StartsWith(Containers.Deployments + "/") ? manifestName[(Containers.Deployments.Length + 1)..] : manifestName;
        var manifest = DeploymentManifest.Parse(await store.GetTextAsync(Containers.Deployments, Containers.CheckName(name, "deployment")))
            ?? throw new SioException($"deployment {manifestName} does not exist");
        var current = DeploymentManifest.Parse(await store.GetTextAsync(Containers.Deployments, DeploymentManifest.Current));
        if (events is not null) await events.DeployAsync(manifest);
        if (current?.Id != manifest.Id)
        {
            await DeploymentCatalog.RecordAsync(store, name, manifest, DateTime.UtcNow); // first: a retry after a failed write records it again, harmlessly
            await store.PutTextAsync(Containers.Deployments, DeploymentManifest.Current, manifest.ToJson());
        }
        return true;
    }
}
