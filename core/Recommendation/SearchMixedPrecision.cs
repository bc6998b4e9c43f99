using Microsoft.DurableTask;
using Sio.Artifacts;
using Sio.Evaluation;
using Sio.Pipeline;
using Sio.Quantization;

namespace Sio.Recommendation;

/// <summary>
/// The build of a mixed-precision candidate: <see cref="MixedPrecision.Search"/> over the model (AWQ calibrated on the
/// calibration half, KL divergence measured on the evaluation half's first records), published as a model artifact keyed
/// by the model, the config, the data and the budget, and reused.
/// </summary>
public sealed class SearchMixedPrecision(ArtifactRepository artifacts) : TaskActivity<MixedInput, ModelArtifact>
{
    public override Task<ModelArtifact> RunAsync(TaskActivityContext context, MixedInput input) => PipelineTraces.Step("mixed-precision", context, input.Name, () => RunAsync(input));

    public async Task<ModelArtifact> RunAsync(MixedInput input)
    {
        var config = input.Config;
        var key = ContentAddress.Of("mixed/1", input.Model.Key, config.ContentKey(), input.Dataset.Sha256, input.MaxKld, BenchmarkVariant.DivergenceRecords);
        return await artifacts.GetOrBuildModelAsync(key, input.Name, async outDir =>
        {
            var source = await artifacts.MaterializeAsync(input.Model.Key);
            var calibration = config.Method == "awq" ? await artifacts.ArtifactFileAsync(input.Dataset.CalibrationKey) : null;
            var data = DatasetReader.Read(await artifacts.ArtifactFileAsync(input.Dataset.EvaluationKey));
            data = data with { Records = data.Records.Take(BenchmarkVariant.DivergenceRecords).ToList() };
            await BenchmarkVariant.MeasurementLock.WaitAsync(); // its KL divergence passes are measurements too
            try { MixedPrecision.Search(source, outDir, config with { Calibration = calibration }, data, input.MaxKld, artifacts.Options.ModelOptions); }
            finally { BenchmarkVariant.MeasurementLock.Release(); }
        });
    }
}
