using System.Text.Json;
using Microsoft.DurableTask;
using Sio.Artifacts;
using Sio.Pipeline;

namespace Sio.Recommendation;

public sealed record PublishRecommendationInput(string RunId, RecommendationRequest Request, IReadOnlyList<Finalist> Measured, IReadOnlyList<Discarded> Discarded, double Seconds);
public sealed record PublishedRecommendation(string Report, string? Top, int Entries, string? DeploymentManifest);

/// <summary>
/// The recommendation's last step: ranks the finalists on the instances this worker's measurements stand for, and
/// publishes reports/RUN/recommendation.json and .md, plus report.json listing each entry as a variant so that any entry
/// deploys as a run's variant does (POST /api/deployments {"runId", "variant"}); with deploy asked for, the top entry's
/// manifest is written as deployments/RUN.json.
/// </summary>
public sealed class PublishRecommendation(ArtifactRepository artifacts) : TaskActivity<PublishRecommendationInput, PublishedRecommendation>
{
    public override Task<PublishedRecommendation> RunAsync(TaskActivityContext context, PublishRecommendationInput input) =>
        PipelineTraces.Step("publish", context, input.RunId, () => RunAsync(input));

    public async Task<PublishedRecommendation> RunAsync(PublishRecommendationInput input)
    {
        var (measured, notMeasured) = MeasuredInstances.Split(MeasuredInstances.Considered(input.Request), artifacts.Options.ModelOptions.Provider, Environment.ProcessorCount);
        var (ranked, pareto, sloDiscarded) = Ranking.Rank(input.Request, input.Measured, measured);
        var request = input.Request;
        var recommendation = new Recommendation(input.RunId, request.Target,
            $"prompts {request.InputLengths?.ToString() ?? "from the dataset"} tokens, answers {request.OutputLengths} tokens, {request.Requests} requests × {request.Runs} runs per concurrency limit",
            request.Objectives?.ToString() ?? "none", request.QualityLimits.ToString(), ranked, pareto, [.. input.Discarded, .. sloDiscarded], notMeasured,
            $"{Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, provider {artifacts.Options.ModelOptions.Provider}",
            Math.Round(input.Seconds, 1), request.Budget, DateTime.UtcNow);
        var variants = ranked.Select(Variant).ToList();
        var folder = input.RunId;
        await artifacts.Store.PutTextAsync(Containers.Reports, $"{folder}/recommendation.md", RecommendationReport.Markdown(recommendation));
        await artifacts.Store.PutTextAsync(Containers.Reports, $"{folder}/recommendation.json", JsonSerializer.Serialize(recommendation, OptimizationRequest.Json));
        await artifacts.Store.PutTextAsync(Containers.Reports, $"{folder}/report.json", JsonSerializer.Serialize(new { runId = input.RunId, recommendation = true, variants }, OptimizationRequest.Json));
        string? deployment = null;
        if (request.Deploy && variants.Count > 0)
        {
            var top = ranked[0];
            var manifest = DeploymentManifest.For(input.RunId, input.RunId, variants[0], 0, top.Metric("price_per_1m_output_tokens")?.Value ?? 0);
            deployment = $"{Containers.Deployments}/{input.RunId}.json";
            await artifacts.Store.PutTextAsync(Containers.Deployments, $"{input.RunId}.json", manifest.ToJson());
        }
        return new PublishedRecommendation($"{Containers.Reports}/{folder}/recommendation.json", ranked.FirstOrDefault()?.Variant, ranked.Count, deployment);
    }

    /// <summary>An entry as a measured variant of the run: what a deployment is made from.</summary>
    static VariantMeasurement Variant(RankedEntry e)
    {
        double M(string name) => e.Metric(name)?.Value ?? 0;
        var c = e.Candidate;
        var level = new LevelMeasurement(e.Concurrency, M("output_throughput"), e.Expected.First(m => m.Metric == "ttft" && m.Statistic == "p50").Value, 0,
            M("itl"), Benchmarking.Pricing.BlendedPricePerMillionTokens(e.PricePerHour, 0, M("output_throughput")), 0, e.Expected.First(m => m.Metric == "tpot" && m.Statistic == "p50").Value);
        return new VariantMeasurement(e.Variant, new ModelArtifact(e.ModelKey, c.ModelName, c.Quantization == "none" ? "fp32" : c.Quantization, (long)M("model_size"), true),
            e.Drafter, [level], e.Quality.Perplexity, e.Metric("acceptance_rate")?.Value, null, e.Instance, e.PricePerHour, true,
            Serving: new ServingSettings(c.Engine, e.Concurrency, c.DraftTokens));
    }
}
