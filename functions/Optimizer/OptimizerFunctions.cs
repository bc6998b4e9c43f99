using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Sio.Artifacts;
using Sio.Pipeline;

namespace Sio.Functions;

/// <summary>
/// The optimizer app's triggers, each a thin wrapper over core: the HTTP API (same routes and answers
/// as `sio up`), the uploads blob trigger, and the orchestrator and activities.
/// </summary>
public sealed class OptimizerFunctions(PipelineSteps steps)
{
    static string Base(HttpRequest r) => $"{r.Scheme}://{r.Host}";

    [Function("StartOptimization")]
    public async Task<IActionResult> Start([HttpTrigger(AuthorizationLevel.Function, "post", Route = "optimizations")] HttpRequest req, [DurableClient] DurableTaskClient client) =>
        Result(req, await new OptimizationApi(client, steps).StartAsync(req.Body, Base(req), req.HttpContext.RequestAborted));

    [Function("ListOptimizations")]
    public async Task<IActionResult> List([HttpTrigger(AuthorizationLevel.Function, "get", Route = "optimizations")] HttpRequest req, [DurableClient] DurableTaskClient client) =>
        Result(req, await new OptimizationApi(client, steps).ListAsync(Base(req), req.HttpContext.RequestAborted));

    [Function("GetOptimization")]
    public async Task<IActionResult> Get([HttpTrigger(AuthorizationLevel.Function, "get", Route = "optimizations/{id}")] HttpRequest req, [DurableClient] DurableTaskClient client, string id) =>
        Result(req, await new OptimizationApi(client, steps).StatusAsync(id, Base(req), req.HttpContext.RequestAborted));

    [Function("CancelOptimization")]
    public async Task<IActionResult> Cancel([HttpTrigger(AuthorizationLevel.Function, "delete", Route = "optimizations/{id}")] HttpRequest req, [DurableClient] DurableTaskClient client, string id) =>
        Result(req, await new OptimizationApi(client, steps).CancelAsync(id, req.HttpContext.RequestAborted));

    [Function("GetReport")]
    public async Task<IActionResult> Report([HttpTrigger(AuthorizationLevel.Function, "get", Route = "optimizations/{id}/report")] HttpRequest req, [DurableClient] DurableTaskClient client, string id) =>
        Result(req, await new OptimizationApi(client, steps).ReportAsync(id, req.HttpContext.RequestAborted));

    [Function("Deploy")]
    public async Task<IActionResult> Deploy([HttpTrigger(AuthorizationLevel.Function, "post", Route = "deployments")] HttpRequest req, [DurableClient] DurableTaskClient client) =>
        Result(req, await new OptimizationApi(client, steps).DeployAsync(req.Body, req.HttpContext.RequestAborted));

    /// <summary>A model landing in the uploads container starts a run with the app's default recipe (SIO_RECIPE, SIO_DATASET, SIO_GATE_*).</summary>
    [Function("OnUpload")]
    public async Task OnUpload([BlobTrigger("uploads/{name}", Source = BlobTriggerSource.EventGrid, Connection = "SioStorage")] Stream blob, string name,
        [DurableClient] DurableTaskClient client)
    {
        if (!PipelineSteps.IsModelUpload(name)) return;
        var request = DefaultRequest() with { Model = $"{Containers.Uploads}/{name}" };
        await new OptimizationApi(client, steps).StartAsync(request, "");
    }

    public static OptimizationRequest DefaultRequest() => new()
    {
        Model = "uploads/placeholder",
        Recipe = Environment.GetEnvironmentVariable("SIO_RECIPE") ?? "awq-int4,speculative:datastore",
        Dataset = Environment.GetEnvironmentVariable("SIO_DATASET") ?? "uploads/dataset.jsonl",
        Gates = new QualityGates
        {
            MaxPerplexityIncreasePercent = double.TryParse(Environment.GetEnvironmentVariable("SIO_GATE_MAX_PERPLEXITY_INCREASE"), out var p) ? p : 10,
            MinSpeedup = double.TryParse(Environment.GetEnvironmentVariable("SIO_GATE_MIN_SPEEDUP"), out var s) ? s : 1.0,
        },
    };

    [Function(nameof(OptimizeModel))]
    public static Task<OptimizationResult> Orchestrate([OrchestrationTrigger] TaskOrchestrationContext context) =>
        new OptimizeModel().RunAsync(context, context.GetInput<OptimizationRequest>()!);

    [Function(nameof(ValidateRequest))] public Task<StagedDataset> Validate([ActivityTrigger] OptimizationRequest input) => steps.ValidateAsync(input);
    [Function(nameof(ImportModel))] public Task<ModelArtifact> Import([ActivityTrigger] ImportInput input) => steps.ImportAsync(input);
    [Function(nameof(QuantizeModel))] public Task<ModelArtifact> Quantize([ActivityTrigger] QuantizeInput input) => steps.QuantizeAsync(input);
    [Function(nameof(CompileModel))] public Task<ModelArtifact> Compile([ActivityTrigger] CompileInput input) => steps.CompileAsync(input);
    [Function(nameof(BenchmarkVariant))] public Task<VariantMeasurement> Benchmark([ActivityTrigger] BenchmarkInput input) => steps.BenchmarkAsync(input);
    [Function(nameof(PublishResult))] public Task<Published> Publish([ActivityTrigger] PublishInput input) => steps.PublishAsync(input);
    [Function(nameof(RaiseDeployment))] public Task<bool> RaiseDeployment([ActivityTrigger] string manifest) => steps.DeployAsync(manifest);

    /// <summary>Writes an <see cref="ApiResult"/> as the function's answer (problem details for errors).</summary>
    static IActionResult Result(HttpRequest req, ApiResult r)
    {
        if (r.Location is not null) req.HttpContext.Response.Headers.Location = r.Location;
        return new ContentResult
        {
            StatusCode = r.Status,
            ContentType = r.Problem ? "application/problem+json" : "application/json",
            Content = r.Body is null ? "" : System.Text.Json.JsonSerializer.Serialize(r.Body, r.Body.GetType(), OptimizationRequest.Json),
        };
    }
}
