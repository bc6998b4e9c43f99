using System.Text.Json;
using Microsoft.DurableTask;
using Sio.Artifacts;
using Sio.Evaluation;
using Sio.Generation;
using Sio.Pipeline;

namespace Sio.Recommendation;

/// <summary>
/// The screen's quality step: a built model's KL divergence, same-top-token rate and perplexity against the float model
/// on the first evaluation records (the pipeline's own divergence measure), stored per model and dataset and reused.
/// </summary>
public sealed class ScoreQuality(ArtifactRepository artifacts) : TaskActivity<ScoreInput, QualityScore>
{
    public override Task<QualityScore> RunAsync(TaskActivityContext context, ScoreInput input) => PipelineTraces.Step("score", context, input.Model.Name, () => RunAsync(input));

    public async Task<QualityScore> RunAsync(ScoreInput input)
    {
        var name = $"{ArtifactRepository.MeasurementsPrefix}/{ContentAddress.Of("quality/1", input.Model.Key, input.Baseline.Key, input.Dataset.Sha256, BenchmarkVariant.DivergenceRecords)}.json";
        if (await artifacts.Store.GetTextAsync(Containers.Artifacts, name) is { } cached) return JsonSerializer.Deserialize<QualityScore>(cached, OptimizationRequest.Json)!;
        var folder = await artifacts.MaterializeAsync(input.Model.Key);
        var reference = await artifacts.MaterializeAsync(input.Baseline.Key);
        var data = DatasetReader.Read(await artifacts.ArtifactFileAsync(input.Dataset.EvaluationKey));
        data = data with { Records = data.Records.Take(BenchmarkVariant.DivergenceRecords).ToList() };
        QualityScore score;
        await BenchmarkVariant.MeasurementLock.WaitAsync();
        try
        {
            var options = artifacts.Options.ModelOptions;
            using var model = Model.Load(folder, options);
            using var baseline = Model.Load(reference, options);
            var d = Divergence.Compare(model, baseline, data, maxTokensPerRecord: 256);
            score = new QualityScore(Math.Round(d.MeanKld, 6), Math.Round(d.P99Kld, 6), Math.Round(d.SameTopToken, 5), Math.Round(d.Perplexity, 5),
                Math.Round(d.ReferencePerplexity, 5), d.Tokens, input.Model.Bytes);
        }
        finally { BenchmarkVariant.MeasurementLock.Release(); }
        await artifacts.Store.PutTextAsync(Containers.Artifacts, name, JsonSerializer.Serialize(score, OptimizationRequest.Json));
        return score;
    }
}
