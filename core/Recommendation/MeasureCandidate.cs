using System.Diagnostics;
using System.Text.Json;
using Microsoft.DurableTask;
using Sio.Artifacts;
using Sio.Benchmarking;
using Sio.Evaluation;
using Sio.Generation;
using Sio.Pipeline;
using Sio.Speculative;

namespace Sio.Recommendation;

/// <summary>
/// Measures one candidate on the workload, after one untimed warm-up request: a closed-loop sweep of its concurrency limits on the dataset's evaluation
/// prompts (or prompts of the workload's lengths cut from them), each level run the workload's number of times, and for a
/// speculative candidate whether its greedy output is exactly the plain model's. Stored by input and reused. A candidate
/// the engine cannot run (the native engine on a graph it does not know) comes back with the reason, not as a failure.
/// </summary>
public sealed class MeasureCandidate(ArtifactRepository artifacts, BenchmarkVariant benchmark) : TaskActivity<MeasureInput, CandidateMeasurement>
{
    public override Task<CandidateMeasurement> RunAsync(TaskActivityContext context, MeasureInput input) => PipelineTraces.Step("measure", context, input.Candidate.Name, () => RunAsync(input));

    public async Task<CandidateMeasurement> RunAsync(MeasureInput input)
    {
        var name = $"{ArtifactRepository.MeasurementsPrefix}/{ContentAddress.Of("candidate/2", JsonSerializer.Serialize(input.Candidate), input.Model.Key, input.Dataset.Sha256, JsonSerializer.Serialize(input.Workload))}.json";
        if (await artifacts.Store.GetTextAsync(Containers.Artifacts, name) is { } cached)
            return JsonSerializer.Deserialize<CandidateMeasurement>(cached, OptimizationRequest.Json)! with { Reused = true };
        var folder = await artifacts.MaterializeAsync(input.Model.Key);
        var data = DatasetReader.Read(await artifacts.ArtifactFileAsync(input.Dataset.EvaluationKey));
        var drafter = input.Candidate.Drafter;
        await BenchmarkVariant.MeasurementLock.WaitAsync();
        CandidateMeasurement m;
        try
        {
            // the pipeline's own datastore drafter, built (once per model and dataset) under the same lock: never beside a measurement
            if (DrafterSpec.Parse(drafter) is { Kind: DrafterKind.Datastore, Path: null }) drafter = await benchmark.DatastoreAsync(input.Model, folder, input.Dataset);
            m = Measure(input, folder, data, await artifacts.LocalDrafterAsync(drafter)) with { Drafter = drafter };
        }
        finally { BenchmarkVariant.MeasurementLock.Release(); }
        if (m.Error is null) await artifacts.Store.PutTextAsync(Containers.Artifacts, name, JsonSerializer.Serialize(m, OptimizationRequest.Json));
        return m;
    }

    CandidateMeasurement Measure(MeasureInput input, string folder, Dataset data, string localDrafter)
    {
        var c = input.Candidate;
        var w = input.Workload;
        var clock = Stopwatch.StartNew();
        var speculative = new SpeculativeOptions { Drafter = localDrafter, DraftTokens = c.DraftTokens };
        var options = artifacts.Options.ModelOptions with { Engine = c.Engine };
        Model model;
        try { model = Model.Load(folder, options.ForDrafter(speculative)); }
        catch (SioException e) { return new CandidateMeasurement(c, input.Model.Key, [], 0, false, Error: e.Message); }
        using (model)
        {
            var prompts = WorkloadPrompts.Build(model, data, w);
            var config = new LoadBenchmarkConfig
            {
                Concurrency = w.Concurrency, Requests = w.Requests, Runs = w.Runs, MaxNewTokens = prompts.AnswerTokens!.Max(),
                PromptTokensMin = 1, PromptTokensMax = int.MaxValue, ModelOptions = options, Speculative = speculative,
                Slo = w.Slo is null ? null : LatencySlo.Parse(w.Slo),
            }.Validate();
            // one untimed request first: a session's first runs pay for allocations and kernel setup that serving pays once
            TextGeneration.Generate(model, prompts.Prompts[0], new GenerationOptions { MaxTokens = 4, IgnoreModelStopTokens = true });
            var levels = LoadBenchmark.Sweep(model, prompts, config, Pricing.Catalogue()[0], 0);
            var (exactChecked, exact) = speculative.Enabled ? BenchmarkVariant.ExactOutputs(model, prompts.Prompts, speculative, Math.Min(64, config.MaxNewTokens)) : (null, null);
            return new CandidateMeasurement(c, input.Model.Key, levels.Select(Level).ToList(), Math.Round(clock.Elapsed.TotalSeconds, 2), false, exactChecked, exact);
        }
    }

    static LoadLevel Level(LevelResult l) => new(l.Concurrency, l.Requests, l.Errors, R(l.OutputTokensPerSecond), l.OutputTokensPerSecondCi95 is { } ci ? R(ci) : null,
        R(l.TtftMs.P50), R(l.TtftMs.P99), R(l.TpotMs?.P50 ?? 0), R(l.TpotMs?.P99 ?? 0), R(l.ItlMs.P50), R(l.ItlMs.P99), R(l.E2eMs.P50), R(l.E2eMs.P99),
        R(l.RequestsPerSecond), R(l.Goodput), l.GoodputCi95 is { } g ? R(g) : null, l.GoodRequests, R(l.OutputTokensPerSecondPerRequest), l.AcceptanceRate);

    static double R(double x) => Math.Round(x, 4);
}
