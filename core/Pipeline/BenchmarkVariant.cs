using System.Text.Json;
using Microsoft.DurableTask;
using Sio.Artifacts;
using Sio.Benchmarking;
using Sio.Evaluation;
using Sio.Generation;
using Sio.Speculative;

namespace Sio.Pipeline;

/// <summary>
/// The benchmark step: one variant measured, a load sweep on the dataset's evaluation prompts and its perplexity, and
/// for a speculative variant whether its output is exactly the target's. Measurements are stored by input key and reused on retry.
/// </summary>
public sealed class BenchmarkVariant(ArtifactRepository artifacts) : TaskActivity<BenchmarkInput, VariantMeasurement>
{
    // One measurement at a time on this machine: concurrent benchmarks would measure each other.
    internal static readonly SemaphoreSlim MeasurementLock = new(1, 1);

    /// <summary>Prompts checked for exact speculative output per measurement.</summary>
    public const int ExactnessPrompts = 8;

    /// <summary>Evaluation records (each cut to 256 tokens) on which a variant's distributions are compared with the baseline's:
    /// up to 2,048 scored tokens, which pins the mean KL divergence to a few percent, at two full-vocabulary passes per token.</summary>
    public const int DivergenceRecords = 8;

    public override Task<VariantMeasurement> RunAsync(TaskActivityContext context, BenchmarkInput input) => PipelineTraces.Step("benchmark", context, input.Variant, () => RunAsync(input));

    public async Task<VariantMeasurement> RunAsync(BenchmarkInput input)
    {
        var instance = Pricing.Resolve(input.Instance, input.PricePerHour);
        var key = ContentAddress.Of("benchmark/4", input.Variant, input.Model.Key, input.Drafter, input.Dataset.Sha256, JsonSerializer.Serialize(input.Settings), instance.Name, instance.PricePerHour,
            input.Reference?.Key ?? "");
        var name = $"{ArtifactRepository.MeasurementsPrefix}/{key}.json";
        if (await artifacts.Store.GetTextAsync(Containers.Artifacts, name) is { } cached)
            return JsonSerializer.Deserialize<VariantMeasurement>(cached, OptimizationRequest.Json)! with { Reused = true };
        var folder = await artifacts.MaterializeAsync(input.Model.Key);
        var reference = input.Reference is { } r && r.Key != input.Model.Key ? await artifacts.MaterializeAsync(r.Key) : null;
        var data = DatasetReader.Read(await artifacts.ArtifactFileAsync(input.Dataset.EvaluationKey));
        await MeasurementLock.WaitAsync(); // building a datastore is heavy work too: never beside a measurement
        VariantMeasurement m;
        try
        {
            if (DrafterSpec.Parse(input.Drafter) is { Kind: DrafterKind.Datastore, Path: null }) input = input with { Drafter = await DatastoreAsync(input.Model, folder, input.Dataset) };
            m = Measure(input with { Drafter = await artifacts.LocalDrafterAsync(input.Drafter) }, folder, data, instance) with { Drafter = input.Drafter };
            m = m with { FromBaseline = await FromBaselineAsync(input, folder, data, reference) };
        }
        finally { MeasurementLock.Release(); }
        await artifacts.Store.PutTextAsync(Containers.Artifacts, name, JsonSerializer.Serialize(m, OptimizationRequest.Json));
        return m;
    }

    /// <summary>
    /// The pipeline's retrieval drafter: a self-distilled datastore (the calibration records plus the model's own greedy
    /// continuations of their openings), built once per model and dataset, stored as artifacts/datastores/KEY.jsonl.
    /// </summary>
    internal async Task<string> DatastoreAsync(ModelArtifact model, string folder, StagedDataset dataset)
    {
        var name = $"datastores/{ContentAddress.Of("datastore/1", model.Key, dataset.Sha256)}.jsonl";
        await artifacts.Locked(name, async () =>
        {
            if (await artifacts.Store.ExistsAsync(Containers.Artifacts, name)) return true;
            var calibration = DatasetReader.Read(await artifacts.ArtifactFileAsync(dataset.CalibrationKey));
            using var file = artifacts.NewScratch("build", ".jsonl");
            Directory.CreateDirectory(Path.GetDirectoryName(file.Path)!);
            using (var m = Model.Load(folder, artifacts.Options.ModelOptions)) DatastoreBuilder.Build(m, calibration, file.Path, [8, 16, 32], 256);
            await artifacts.Store.UploadAsync(Containers.Artifacts, name, file.Path);
            return true;
        });
        return new DrafterSpec(DrafterKind.Datastore, $"{Containers.Artifacts}/{name}").ToString();
    }

    VariantMeasurement Measure(BenchmarkInput input, string folder, Dataset data, Instance instance)
    {
        var s = input.Settings;
        var speculative = new SpeculativeOptions { Drafter = input.Drafter };
        var modelOptions = artifacts.Options.ModelOptions;
        using var model = Model.Load(folder, modelOptions.ForDrafter(speculative));
        var config = new LoadBenchmarkConfig
        {
            Concurrency = s.Concurrency, Requests = s.Requests, MaxNewTokens = s.MaxNewTokens,
            PromptTokensMin = s.PromptTokensMin, PromptTokensMax = s.PromptTokensMax,
            ModelOptions = modelOptions, Speculative = speculative,
        }.Validate();
        var prompts = LoadBenchmark.Prompts(model, data, config);
        var levels = LoadBenchmark.Sweep(model, prompts, config, instance, 0);
        var ppl = Perplexity.Evaluate(model, data with { Records = data.Records.Take(s.PerplexityRecords).ToList() }, maxTokensPerRecord: 256);
        var spec = levels.FirstOrDefault(l => l.AcceptanceRate is not null);
        var (exactChecked, exact) = !speculative.Enabled ? ((int?)null, (int?)null) : ExactOutputs(model, prompts.Prompts, speculative, s.MaxNewTokens);
        return new VariantMeasurement(input.Variant, input.Model, input.Drafter,
            levels.Select(l => new LevelMeasurement(l.Concurrency, Math.Round(l.OutputTokensPerSecond, 2), Math.Round(l.TtftMs.P50, 3), Math.Round(l.ItlMs.P50, 3),
                Math.Round(l.ItlMs.P90, 3), Pricing.BlendedPricePerMillionTokens(instance.PricePerHour, 0, l.OutputTokensPerSecond), l.Errors,
                Math.Round(Math.Max(0, l.E2eMs.P50 - l.TtftMs.P50) / Math.Max(1, s.MaxNewTokens - 1), 4))).ToList(),
            Math.Round(ppl.Perplexity, 5), spec?.AcceptanceRate, spec?.MeanAcceptedLength, instance.Name, instance.PricePerHour, false,
            exactChecked, exact, VariantMeasurement.ThisWorker);
    }

    /// <summary>KL divergence and same-top-token rate from the baseline on the first evaluation records, stored per model,
    /// baseline and dataset (a speculative variant serves the weights of the variant before it: computed once). A variant
    /// that serves the baseline's own weights (a drafter alone) is 0 and 1 by construction, without a pass.</summary>
    async Task<BaselineDivergence?> FromBaselineAsync(BenchmarkInput input, string folder, Dataset data, string? referenceFolder)
    {
        if (input.Reference is null) return null;
        if (referenceFolder is null) return new BaselineDivergence(0, 0, 1, 0);
        var records = Math.Min(DivergenceRecords, input.Settings.PerplexityRecords);
        var name = $"{ArtifactRepository.MeasurementsPrefix}/{ContentAddress.Of("divergence/1", input.Model.Key, input.Reference.Key, input.Dataset.Sha256, records)}.json";
        if (await artifacts.Store.GetTextAsync(Containers.Artifacts, name) is { } cached) return JsonSerializer.Deserialize<BaselineDivergence>(cached, OptimizationRequest.Json);
        var options = artifacts.Options.ModelOptions;
        using var model = Model.Load(folder, options);
        using var reference = Model.Load(referenceFolder, options);
        var d = Divergence.Compare(model, reference, data with { Records = data.Records.Take(records).ToList() }, maxTokensPerRecord: 256);
        var result = new BaselineDivergence(Math.Round(d.MeanKld, 6), Math.Round(d.P99Kld, 6), Math.Round(d.SameTopToken, 5), d.Tokens);
        await artifacts.Store.PutTextAsync(Containers.Artifacts, name, JsonSerializer.Serialize(result, OptimizationRequest.Json));
        return result;
    }

    /// <summary>The deployment's promise, checked on the user's own prompts: greedy decoding with the drafter gives the
    /// tokens plain greedy decoding gives.</summary>
    internal static (int?, int?) ExactOutputs(Model model, IReadOnlyList<List<int>> prompts, SpeculativeOptions spec, int maxNewTokens)
    {
        var opts = new GenerationOptions { MaxTokens = maxNewTokens, IgnoreModelStopTokens = true };
        int checkedCount = 0, same = 0;
        foreach (var prompt in prompts.Take(ExactnessPrompts))
        {
            var plain = TextGeneration.Generate(model, prompt, opts);
            using var d = DrafterFactory.Create(spec, model);
            var withDrafter = TextGeneration.Generate(model, prompt, opts with { Speculative = spec }, drafter: d);
            checkedCount++;
            if (plain.TokenIds.SequenceEqual(withDrafter.TokenIds)) same++;
        }
        return (checkedCount, same);
    }
}
