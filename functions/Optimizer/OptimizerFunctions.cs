using Microsoft.AspNetCore.Http;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.DependencyInjection;
using Sio.Artifacts;
using Sio.Hosting;
using Sio.Pipeline;
using Sio.Recommendation;

namespace Sio.Functions;

/// <summary>
/// The optimizer app's triggers, each a thin wrapper: the HTTP surface (the route table of every host), the uploads
/// blob trigger, and the orchestrator and activities.
/// </summary>
public sealed class OptimizerFunctions(IServiceProvider services, RouteDispatcher http)
{
    /// <summary>
    /// Every HTTP request: the route table every sio host serves (<see cref="ApiRoutes"/>), dispatched from one catch-all
    /// trigger (host.json sets an empty route prefix, so the paths are those of `sio up`). The Durable client of the
    /// request backs the pipeline routes; the app serves no model, so the OpenAI routes answer 501.
    /// </summary>
    [Function("Http")]
    public Task Http([HttpTrigger(AuthorizationLevel.Anonymous, "get", "head", "post", "put", "delete", Route = "{*path}")] HttpRequest req,
        [DurableClient] DurableTaskClient client)
    {
        req.HttpContext.Items[ClientKey] = client;
        return http.DispatchAsync(req.HttpContext);
    }

    const string ClientKey = "sio.durable-client";

    /// <summary>The app's HTTP surface, given the key check of the app's SIO_API_KEY.</summary>
    public static RouteDispatcher Routes(IServiceProvider services, ApiKeyCheck keys, RequestDelegate metrics) => new(ApiRoutes.Table(new HostServices
    {
        Name = "the optimizer Function App", Metrics = metrics,
        Pipeline = c => c.Items[ClientKey] is DurableTaskClient client ? Api(services, client) : null,
    }), keys);

    static OptimizationApi Api(IServiceProvider services, DurableTaskClient client) => new(client, services.GetRequiredService<ArtifactRepository>(),
        services.GetRequiredService<ImportModel>(), services.GetRequiredService<RaiseDeployment>());

    T Step<T>() where T : notnull => services.GetRequiredService<T>();

    /// <summary>A model landing in the uploads container starts a run with the app's default recipe (SIO_RECIPE, SIO_DATASET, SIO_GATE_*).</summary>
    [Function("OnUpload")]
    public async Task OnUpload([BlobTrigger("uploads/{name}", Source = BlobTriggerSource.EventGrid, Connection = "SioStorage")] Stream blob, string name,
        [DurableClient] DurableTaskClient client)
    {
        if (!ArtifactRepository.IsModelUpload(name)) return;
        var request = DefaultRequest() with { Model = $"{Containers.Uploads}/{name}" };
        await Api(services, client).StartAsync(request, "");
    }

    public static OptimizationRequest DefaultRequest() => new()
    {
        Model = "uploads/placeholder",
        Recipe = Environment.GetEnvironmentVariable("SIO_RECIPE") ?? Pipeline.Recipe.Default,
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

    [Function(nameof(ValidateRequest))] public Task<StagedDataset> Validate([ActivityTrigger] OptimizationRequest input) => Step<ValidateRequest>().RunAsync(input);
    [Function(nameof(ImportModel))] public Task<ModelArtifact> Import([ActivityTrigger] ImportInput input) => Step<ImportModel>().RunAsync(input);
    [Function(nameof(QuantizeModel))] public Task<ModelArtifact> Quantize([ActivityTrigger] QuantizeInput input) => Step<QuantizeModel>().RunAsync(input);
    [Function(nameof(CompileModel))] public Task<ModelArtifact> Compile([ActivityTrigger] CompileInput input) => Step<CompileModel>().RunAsync(input);
    [Function(nameof(BenchmarkVariant))] public Task<VariantMeasurement> Benchmark([ActivityTrigger] BenchmarkInput input) => Step<BenchmarkVariant>().RunAsync(input);
    [Function(nameof(PublishResult))] public Task<Published> Publish([ActivityTrigger] PublishInput input) => Step<PublishResult>().RunAsync(input);
    [Function(nameof(RaiseDeployment))] public Task<bool> RaiseDeployment([ActivityTrigger] string manifest) => Step<RaiseDeployment>().RunAsync(manifest);

    [Function(nameof(RecommendConfigurations))]
    public static Task<RecommendationResult> Recommend([OrchestrationTrigger] TaskOrchestrationContext context) =>
        new RecommendConfigurations().RunAsync(context, context.GetInput<RecommendationRequest>()!);

    [Function(nameof(ScoreQuality))] public Task<QualityScore> Score([ActivityTrigger] ScoreInput input) => Step<ScoreQuality>().RunAsync(input);
    [Function(nameof(SearchMixedPrecision))] public Task<ModelArtifact> SearchMixed([ActivityTrigger] MixedInput input) => Step<SearchMixedPrecision>().RunAsync(input);
    [Function(nameof(MeasureCandidate))] public Task<CandidateMeasurement> Measure([ActivityTrigger] MeasureInput input) => Step<MeasureCandidate>().RunAsync(input);
    [Function(nameof(PublishRecommendation))] public Task<PublishedRecommendation> PublishRecommendation([ActivityTrigger] PublishRecommendationInput input) => Step<PublishRecommendation>().RunAsync(input);
}
