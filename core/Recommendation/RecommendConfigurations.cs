using Microsoft.DurableTask;
using Sio.Pipeline;

namespace Sio.Recommendation;

/// <summary>
/// The recommendation job: validate → import → search: build each quantization of the search space (cheapest first, every
/// model content-addressed and reused) and screen its candidates cheaply at once (quality against the float model, then
/// one request at a time) → prune (quality budget, engines that cannot run a graph, candidates beaten at batch 1 on both quality and
/// speed, speculative candidates slower than their plain twin or not exact) → measure the finalists under load at every
/// concurrency limit, as long as the budget allows → rank, publish and (when asked) deploy the top entry.
/// Building may start while half the budget is left and screening while 40 % is; the load stage measures a finalist only
/// when an upper bound of its time fits what is left. Deterministic: every time is the orchestration's clock.
/// </summary>
public sealed class RecommendConfigurations : TaskOrchestrator<RecommendationRequest, RecommendationResult>
{
    public override async Task<RecommendationResult> RunAsync(TaskOrchestrationContext context, RecommendationRequest request)
    {
        var search = new Search(context, request);
        var dataset = await search.Run<StagedDataset>("validate", 1, nameof(ValidateRequest), new OptimizationRequest { Model = request.Model, Tokenizer = request.Tokenizer, Dataset = request.Dataset });
        var baseline = await search.Run<ModelArtifact>("import", 2, nameof(ImportModel), new ImportInput(request.Model, request.Tokenizer));
        search.Begin(baseline, dataset);
        await search.ScreenModelsAsync();
        var finalists = Screening.Prune(search.Screened, search.Quality, request.Target, request.Space.Finalists, search.Discarded);
        finalists.AddRange(await search.ScreenDraftersAsync(finalists));
        var measured = await search.LoadAsync(finalists);
        var published = await search.Run<PublishedRecommendation>("publish", 5, nameof(PublishRecommendation),
            new PublishRecommendationInput(context.InstanceId, request, measured, search.Discarded, search.Elapsed.TotalSeconds));
        bool deployed = request.Deploy && published.DeploymentManifest is { } manifest && await search.Run<bool>("deploy", 6, nameof(RaiseDeployment), manifest);
        search.Log.Finish(published.Top is null ? "no configuration met the objectives" : $"recommended {published.Top} ({published.Entries} {(published.Entries == 1 ? "entry" : "entries")}){(deployed ? "; deployed it" : "")}");
        return new RecommendationResult(context.InstanceId, published.Top, published.Entries, published.Report, deployed);
    }

    /// <summary>One search's state: what was built, scored, screened and discarded, and the budget's clock.</summary>
    sealed class Search(TaskOrchestrationContext context, RecommendationRequest request)
    {
        public RunLog Log { get; } = new(context, 5 + (request.Deploy ? 1 : 0));
        public List<Discarded> Discarded { get; } = [];
        public List<(Candidate C, CandidateMeasurement M)> Screened { get; } = [];
        public Dictionary<string, QualityScore> Quality { get; } = [];
        readonly Dictionary<string, ModelArtifact> _built = [];
        readonly DateTime _start = context.CurrentUtcDateTime;
        readonly TimeSpan _budget = request.BudgetTime;
        ModelArtifact _baseline = null!;
        StagedDataset _dataset = null!;
        int _step;

        public TimeSpan Elapsed => context.CurrentUtcDateTime - _start;
        TimeSpan Left => _budget - Elapsed;

        public async Task<T> Run<T>(string name, int step, string activity, object input, string? detail = null)
        {
            Log.Step(name, _step = step, detail);
            try { return await context.CallActivityAsync<T>(activity, input, OptimizeModel.Retry); }
            catch (TaskFailedException e) { Log.Fail(name, step, e.FailureDetails.ErrorMessage); throw new PipelineStepFailedException(name, e.FailureDetails.ErrorMessage); }
        }

        public void Begin(ModelArtifact baseline, StagedDataset dataset)
        {
            (_baseline, _dataset) = (baseline, dataset);
            _built["fp32"] = baseline;
            Quality["fp32"] = new QualityScore(0, 0, 1, 0, 0, 0, baseline.Bytes);
        }

        /// <summary>Each quantization in turn (the float model first, RTN before AWQ), built, scored and its candidates screened at once.</summary>
        public async Task ScreenModelsAsync()
        {
            var byModel = Candidate.Plain(request.Space).GroupBy(c => c.ModelName).ToList();
            for (int i = 0; i < byModel.Count; i++)
            {
                var first = byModel[i].First();
                if (first.Quantization != "none" && await BuildAsync(first, $"{i}/{byModel.Count - 1}: {first.ModelName}") is null) continue;
                foreach (var c in byModel[i]) await ScreenAsync(c, $"{c.Name} ({i + 1}/{byModel.Count} models)");
            }
        }

        /// <summary>Speculative candidates on the float model and on the best quantization that passed (rebuilt exact), kept
        /// when faster than their plain twin at concurrency 1.</summary>
        public async Task<List<(Candidate C, CandidateMeasurement M)>> ScreenDraftersAsync(IReadOnlyList<(Candidate C, CandidateMeasurement M)> finalists)
        {
            var kept = new List<(Candidate, CandidateMeasurement)>();
            var bases = finalists.Select(f => f.C.Quantization).Where(q => q != "none").Take(1).Prepend("none").ToList();
            var speculative = bases.SelectMany(q => Candidate.WithDrafters(request.Space, q)).ToList();
            for (int i = 0; i < speculative.Count; i++)
            {
                var s = speculative[i];
                var twin = Screened.Where(x => !x.C.Speculative && x.C.Quantization == s.Quantization && x.C.Engine == "onnx").Select(x => x.M.Levels[0]).FirstOrDefault();
                if (s.Drafter == "datastore" && twin is not null && Screening.DatastoreSeconds(_dataset, twin) is var building && building > (Left - _budget * 0.4).TotalSeconds)
                {
                    Discarded.Add(new Discarded(s.Name, "budget", $"not screened: building its datastore would take about {building:0} s, more than the search has left"));
                    continue;
                }
                if (s.Quantization != "none" && await BuildAsync(s, $"drafter base {s.ModelName}") is null) continue;
                if (await ScreenAsync(s, $"{i + 1}/{speculative.Count}: {s.Name}") is not { } m) continue;
                if (twin is not null && m.Levels[0].OutputTokensPerSecond <= twin.OutputTokensPerSecond)
                    Discarded.Add(new Discarded(s.Name, "screen", $"{m.Levels[0].OutputTokensPerSecond:0.#} tok/s at concurrency 1, no faster than without the drafter ({twin.OutputTokensPerSecond:0.#})"));
                else kept.Add((s, m));
            }
            return kept;
        }

        /// <summary>The finalists at every concurrency limit and run, each while an upper bound of its time fits the budget.</summary>
        public async Task<List<Finalist>> LoadAsync(IReadOnlyList<(Candidate C, CandidateMeasurement M)> finalists)
        {
            var load = new Workload(request.Space.Concurrency, request.Requests, request.Runs, request.OutputLengths, request.InputLengths, request.Slo);
            var measured = new List<Finalist>();
            for (int i = 0; i < finalists.Count; i++)
            {
                var (c, screen) = finalists[i];
                double estimate = Screening.EstimateSeconds(screen.Levels[0], load, c.Speculative);
                if (estimate > Left.TotalSeconds) { Discarded.Add(new Discarded(c.Name, "budget", $"not measured under load: about {estimate:0} s needed, {Math.Max(0, Left.TotalSeconds):0} s of the budget left")); continue; }
                var m = await Run<CandidateMeasurement>("load", 4, nameof(MeasureCandidate), new MeasureInput(c, _built[c.ModelName], _dataset, load), $"{i + 1}/{finalists.Count}: {c.Name}");
                if (m.Error is not null) { Discarded.Add(new Discarded(c.Name, "load", m.Error)); continue; }
                Log.Event($"measured {c.Name}: best {m.Levels.Max(l => l.OutputTokensPerSecond):0.#} output tok/s");
                measured.Add(new Finalist(c, Quality[c.ModelName], m));
            }
            return measured;
        }

        /// <summary>A candidate's model, built and scored against the float model; null (with the reason) when it cannot be built
        /// here (a setting the model cannot take) or the budget has no room.</summary>
        async Task<ModelArtifact?> BuildAsync(Candidate c, string detail)
        {
            if (_built.TryGetValue(c.ModelName, out var m)) return m;
            if (Left < _budget / 2) { Discarded.Add(new Discarded(c.ModelName, "budget", $"not built: half the budget ({request.Budget}) was spent")); return null; }
            Log.Step("search", _step = 3, $"building {detail}");
            try
            {
                m = c.Mixed
                    ? await context.CallActivityAsync<ModelArtifact>(nameof(SearchMixedPrecision), new MixedInput(_baseline, c.Config()!, _dataset, c.ModelName, request.QualityLimits.MaxKld!.Value), OptimizeModel.Retry)
                    : await context.CallActivityAsync<ModelArtifact>(nameof(QuantizeModel), new QuantizeInput(_baseline, c.Config()!, _dataset, c.ModelName), OptimizeModel.Retry);
            }
            catch (TaskFailedException e) when (e.FailureDetails.ErrorType == typeof(SioException).FullName)
            {
                Discarded.Add(new Discarded(c.ModelName, "build", e.FailureDetails.ErrorMessage)); // that candidate is out, the search goes on
                Log.Event($"could not build {c.ModelName}: {e.FailureDetails.ErrorMessage}");
                return null;
            }
            _built[c.ModelName] = m;
            var q = Quality[c.ModelName] = await Run<QualityScore>("search", 3, nameof(ScoreQuality), new ScoreInput(m, _baseline, _dataset), $"scoring {detail}");
            if (Quality["fp32"].Tokens == 0) // the float model's own perplexity, from the first comparison
                Quality["fp32"] = Quality["fp32"] with { Perplexity = q.BaselinePerplexity, BaselinePerplexity = q.BaselinePerplexity, Tokens = q.Tokens };
            Log.Event($"built {c.ModelName}: {m.Bytes / 1e6:0.##} MB, KL divergence {q.MeanKld:G3}, perplexity +{q.PerplexityIncreasePercent:0.##} %{(m.Reused ? " (reused)" : "")}");
            return m;
        }

        /// <summary>A built candidate within the quality budget, measured with a few requests at concurrency 1.</summary>
        async Task<CandidateMeasurement?> ScreenAsync(Candidate c, string detail)
        {
            if (!_built.TryGetValue(c.ModelName, out var model)) return null;
            if (request.QualityLimits.Failures(Quality[c.ModelName]).ToList() is { Count: > 0 } f) { Discarded.Add(new Discarded(c.Name, "quality", string.Join("; ", f))); return null; }
            if (Left < _budget * 0.4) { Discarded.Add(new Discarded(c.Name, "budget", "not screened: 60 % of the budget was spent")); return null; }
            var work = new Workload([1], Math.Min(4, request.Requests), 1, request.OutputLengths, request.InputLengths, request.Slo);
            var m = await Run<CandidateMeasurement>("search", 3, nameof(MeasureCandidate), new MeasureInput(c, model, _dataset, work), $"screening {detail}");
            if (m.Error is not null) { Discarded.Add(new Discarded(c.Name, "screen", m.Error)); return null; }
            if (m.ExactChecked is int n && m.ExactOutputs < n) { Discarded.Add(new Discarded(c.Name, "exactness", $"speculative output differed from plain decoding on {n - m.ExactOutputs} of {n} prompts")); return null; }
            Log.Event($"screened {c.Name}: {m.Levels[0].OutputTokensPerSecond:0.#} tok/s, TTFT {m.Levels[0].TtftP50Ms:0.#} ms at concurrency 1");
            Screened.Add((c, m));
            return m;
        }
    }
}
