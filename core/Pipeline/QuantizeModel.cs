using Microsoft.DurableTask;
using Sio.Artifacts;
using Sio.Quantization;

namespace Sio.Pipeline;

/// <summary>The quantize step: the recipe's quantization pass over a model artifact, calibrated (AWQ) on the dataset's calibration half.</summary>
public sealed class QuantizeModel(ArtifactRepository artifacts) : TaskActivity<QuantizeInput, ModelArtifact>
{
    public override Task<ModelArtifact> RunAsync(TaskActivityContext context, QuantizeInput input) => PipelineTraces.Step("quantize", context, input.Name, () => RunAsync(input));

    public async Task<ModelArtifact> RunAsync(QuantizeInput input)
    {
        var config = input.Config;
        var key = ContentAddress.Of("quantize/4", input.Model.Key, config.ContentKey(), config.Method == "awq" ? input.Dataset.Sha256 : "");
        return await artifacts.GetOrBuildModelAsync(key, input.Name, async outDir =>
        {
            var source = await artifacts.MaterializeAsync(input.Model.Key);
            var calibration = config.Method == "awq" ? await artifacts.ArtifactFileAsync(input.Dataset.CalibrationKey) : null;
            Quantizer.Run(source, outDir, (config with { Calibration = calibration }).Validate());
        });
    }
}
