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
/// when an upper bound of its time fits what is left.
/// </summary>
public sealed class RecommendConfigurations : TaskOrchestrator<RecommendationRequest, RecommendationResult>
{
    public override async Task<RecommendationResult> RunAsync(TaskOrchestrationContext context, RecommendationRequest request)
    {
        var space = request.Space;
        var plain = Candidate.Plain(space);
        var log = new RunLog(context, 5 + (request.Deploy ? 1 : 0));
        var start = context.CurrentUtcDateTime;
        var budget = request.BudgetTime;
        TimeSpan Left() => budget - (context.CurrentUtcDateTime - start);
        var discarded = new List<Discarded>();
        int step = 0;

        async Task<T> Run<T>(string name, string activity, object input, string? detail = null)
        {
            log.Step(name, step, detail);
            try { return await context.CallActivityAsync<T>(activity, input, OptimizeModel.Retry); }
            catch (TaskFailedException e) { log.Fail(name, step, e.FailureDetails.ErrorMessage); throw new PipelineStepFailedException(name, e.FailureDetails.ErrorMessage); }
        }

        step = 1;
        var dataset = await Run<StagedDataset>("validate", nameof(ValidateRequest), new OptimizationRequest { Model = request.Model, Tokenizer = request.Tokenizer, Dataset = request.Dataset });
        step = 2;
        var baseline = await Run<ModelArtifact>("import", nameof(ImportModel), new ImportInput(request.Model, request.Tokenizer));

        // Build, score and screen each quantization of the space in turn (the float model first, RTN before AWQ), so that
        // every model built is screened at once: building may go on while half the budget is left, screening while 40 %.
        var built = new Dictionary<string, ModelArtifact> { ["fp32"] = baseline };
        var quality = new Dictionary<string, QualityScore> { ["fp32"] = new QualityScore(0, 0, 1, 0, 0, 0, baseline.Bytes) };
        var screenWork = new Workload([1], Math.Min(4, request.Requests), 1, request.OutputLengths, request.InputLengths, request.Slo);
        var limits = request.QualityLimits;
        var screened = new List<(Candidate C, CandidateMeasurement M)>();
        async Task<ModelArtifact?> Build(Candidate c, string detail)
        {
            if (built.TryGetValue(c.ModelName, out var m)) return m;
            if (Left() < budget / 2) { discarded.Add(new Discarded(c.ModelName, "budget", $"not built: half the budget ({request.Budget}) was spent")); return null; }
            step = 3;
            log.Step("search", step, $"building {detail}");
            try { m = await context.CallActivityAsync<ModelArtifact>(nameof(QuantizeModel), new QuantizeInput(baseline, c.Config()!, dataset, c.ModelName), OptimizeModel.Retry); }
            catch (TaskFailedException e) when (e.FailureDetails.ErrorType == typeof(SioException).FullName)
            {
                // a setting this model cannot take (a group wider than a layer): that candidate is out, the search goes on
                discarded.Add(new Discarded(c.ModelName, "build", e.FailureDetails.ErrorMessage));
                log.Event($"could not build {c.ModelName}: {e.FailureDetails.ErrorMessage}");
                return null;
            }
            built[c.ModelName] = m;
            var q = quality[c.ModelName] = await Run<QualityScore>("search", nameof(ScoreQuality), new ScoreInput(m, baseline, dataset), $"scoring {detail}");
            if (quality["fp32"].Tokens == 0) // the float model's own perplexity, from the first comparison
                quality["fp32"] = quality["fp32"] with { Perplexity = q.BaselinePerplexity, BaselinePerplexity = q.BaselinePerplexity, Tokens = q.Tokens };
            log.Event($"built {c.ModelName}: {m.Bytes / 1e6:0.##} MB, KL divergence {q.MeanKld:G3}, perplexity +{q.PerplexityIncreasePercent:0.##} %{(m.Reused ? " (reused)" : "")}");
            return m;
        }
        async Task<CandidateMeasurement?> Screen(Candidate c, string detail)
        {
            if (!built.TryGetValue(c.ModelName, out var model)) return null;
            if (limits.Failures(quality[c.ModelName]).ToList() is { Count: > 0 } f) { discarded.Add(new Discarded(c.Name, "quality", string.Join("; ", f))); return null; }
            if (Left() < budget * 0.4) { discarded.Add(new Discarded(c.Name, "budget", "not screened: 60 % of the budget was spent")); return null; }
            step = 3;
            var m = await Run<CandidateMeasurement>("search", nameof(MeasureCandidate), new MeasureInput(c, model, dataset, screenWork), $"screening {detail}");
            if (m.Error is not null) { discarded.Add(new Discarded(c.Name, "screen", m.Error)); return null; }
            if (m.ExactChecked is int n && m.ExactOutputs < n) { discarded.Add(new Discarded(c.Name, "exactness", $"speculative output differed from plain decoding on {n - m.ExactOutputs} of {n} prompts")); return null; }
            log.Event($"screened {c.Name}: {m.Levels[0].OutputTokensPerSecond:0.#} tok/s, TTFT {m.Levels[0].TtftP50Ms:0.#} ms at concurrency 1");
            screened.Add((c, m));
            return m;
        }
        var byModel = plain.GroupBy(c => c.ModelName).ToList();
        for (int i = 0; i < byModel.Count; i++)
        {
            var first = byModel[i].First();
            if (first.Quantization != "none" && await Build(first, $"{i}/{byModel.Count - 1}: {first.ModelName}") is null) continue;
            foreach (var c in byModel[i]) await Screen(c, $"{c.Name} ({i + 1}/{byModel.Count} models)");
        }
        var finalists = Screening.Prune(screened, quality, request.Target, space.Finalists, discarded);

        // Speculative candidates on the float model and on the best quantization that kept the budget (rebuilt exact).
        var bases = finalists.Select(f => f.C.Quantization).Where(q => q != "none").Take(1).Prepend("none").ToList();
        var speculative = bases.SelectMany(q => Candidate.WithDrafters(space, q)).ToList();
        for (int i = 0; i < speculative.Count; i++)
        {
            var s = speculative[i];
            if (s.Quantization != "none" && await Build(s, $"drafter base {s.ModelName}") is null) continue;
            if (await Screen(s, $"{i + 1}/{speculative.Count}: {s.Name}") is not { } m) continue;
            var twin = screened.Where(x => !x.C.Speculative && x.C.Quantization == s.Quantization && x.C.Engine == "onnx").Select(x => x.M.Levels[0]).FirstOrDefault();
            if (twin is not null && m.Levels[0].OutputTokensPerSecond <= twin.OutputTokensPerSecond)
                discarded.Add(new Discarded(s.Name, "screen", $"{m.Levels[0].OutputTokensPerSecond:0.#} tok/s at concurrency 1, no faster than without the drafter ({twin.OutputTokensPerSecond:0.#})"));
            else finalists.Add((s, m));
        }

        // Load: every concurrency limit, the workload's runs, while the estimate fits the budget.
        step = 4;
        var load = new Workload(space.Concurrency, request.Requests, request.Runs, request.OutputLengths, request.InputLengths, request.Slo);
        var measured = new List<Finalist>();
        for (int i = 0; i < finalists.Count; i++)
        {
            var (c, screen) = finalists[i];
            double estimate = Screening.EstimateSeconds(screen.Levels[0], load, c.Speculative);
            if (estimate > Left().TotalSeconds) { discarded.Add(new Discarded(c.Name, "budget", $"not measured under load: about {estimate:0} s needed, {Math.Max(0, Left().TotalSeconds):0} s of the budget left")); continue; }
            var m = await Run<CandidateMeasurement>("load", nameof(MeasureCandidate), new MeasureInput(c, built[c.ModelName], dataset, load), $"{i + 1}/{finalists.Count}: {c.Name}");
            if (m.Error is not null) { discarded.Add(new Discarded(c.Name, "load", m.Error)); continue; }
            log.Event($"measured {c.Name}: best {m.Levels.Max(l => l.OutputTokensPerSecond):0.#} output tok/s");
            measured.Add(new Finalist(c, quality[c.ModelName], m));
        }

        step = 5;
        var seconds = (context.CurrentUtcDateTime - start).TotalSeconds;
        var published = await Run<PublishedRecommendation>("publish", nameof(PublishRecommendation), new PublishRecommendationInput(context.InstanceId, request, measured, discarded, seconds));
        bool deployed = false;
        if (request.Deploy && published.DeploymentManifest is { } manifest) { step = 6; deployed = await Run<bool>("deploy", nameof(RaiseDeployment), manifest); }
        log.Finish(published.Top is null ? "no configuration met the objectives" : $"recommended {published.Top} ({published.Entries} entries){(deployed ? "; deployed it" : "")}");
        return new RecommendationResult(context.InstanceId, published.Top, published.Entries, published.Report, deployed);
    }
}
