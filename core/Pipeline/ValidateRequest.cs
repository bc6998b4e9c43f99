using System.Text.Json.Nodes;
using Microsoft.DurableTask;
using Sio.Artifacts;
using Sio.Evaluation;

namespace Sio.Pipeline;

/// <summary>
/// The first step: checks that the request's references exist and its dataset reads, before any work is done, and stages
/// the dataset (artifacts/datasets/KEY, split into its calibration and evaluation halves).
/// </summary>
public sealed class ValidateRequest(ArtifactRepository artifacts) : TaskActivity<OptimizationRequest, StagedDataset>
{
    public override Task<StagedDataset> RunAsync(TaskActivityContext context, OptimizationRequest input) => PipelineTraces.Step("validate", context, input.Model, () => RunAsync(input));

    public async Task<StagedDataset> RunAsync(OptimizationRequest request)
    {
        var problems = request.Problems();
        if (problems.Count > 0) throw new SioException(string.Join("; ", problems.SelectMany(p => p.Value.Select(m => $"{p.Key}: {m}"))));
        var file = await artifacts.FetchAsync(request.Dataset, "dataset");
        Dataset data;
        try { data = DatasetReader.Read(file); }
        catch (SioException e) { throw new SioException($"dataset: {e.Message}"); }
        if (data.Records.Count < 2) throw new SioException($"dataset: {request.Dataset} has {data.Records.Count} usable records; at least 2 are needed (half calibrate, half measure)");
        var key = data.Sha256[..32];
        var name = $"{ArtifactRepository.DatasetsPrefix}/{key}{Path.GetExtension(file)}";
        if (!await artifacts.Store.ExistsAsync(Containers.Artifacts, name)) await artifacts.Store.UploadAsync(Containers.Artifacts, name, file);
        var halves = new[] { "calibration", "evaluation" };
        for (int h = 0; h < 2; h++) await StageHalfAsync(data, h, $"{ArtifactRepository.DatasetsPrefix}/{key}.{halves[h]}.jsonl");
        if (request.Tokenizer is not null) await artifacts.FetchAsync(request.Tokenizer, "tokenizer");
        return new StagedDataset(name, data.Sha256, data.Records.Count, $"{ArtifactRepository.DatasetsPrefix}/{key}.calibration.jsonl", $"{ArtifactRepository.DatasetsPrefix}/{key}.evaluation.jsonl");
    }

    /// <summary>Even records calibrate, odd records measure, so no variant is judged on data it was fitted to.</summary>
    async Task StageHalfAsync(Dataset data, int half, string name)
    {
        if (await artifacts.Store.ExistsAsync(Containers.Artifacts, name)) return;
        using var temp = artifacts.NewScratch("incoming", ".jsonl");
        Directory.CreateDirectory(Path.GetDirectoryName(temp.Path)!);
        File.WriteAllLines(temp.Path, data.Records.Where((_, i) => i % 2 == half).Select(r => (r.IsPromptResponse
            ? new JsonObject { ["prompt"] = r.Prompt, ["response"] = r.Response }
            : new JsonObject { ["text"] = r.Text }).ToJsonString()));
        await artifacts.Store.UploadAsync(Containers.Artifacts, name, temp.Path);
    }
}
