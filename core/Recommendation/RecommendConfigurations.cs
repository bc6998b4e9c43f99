using Microsoft.DurableTask;
using Sio.Pipeline;

namespace Sio.Recommendation;

/// <summary>
/// The recommendation job: validate → import → build each quantization of the search space (cheapest first, every model
/// content-addressed and reused) → screen every candidate cheaply (quality against the float model, then one request at
/// a time) → prune (quality budget, engines that cannot run a graph, candidates beaten at batch 1 on both quality and
/// speed, speculative candidates slower than their plain twin or not exact) → measure the finalists under load at every
/// concurrency limit, as long as the budget allows → rank, publish and (when asked) deploy the top entry.
/// Builds and screens may take half the budget; the load stage measures a finalist only when its estimated time fits
/// what is left.
/// </summary>
public sealed class RecommendConfigurations : TaskOrchestrator<RecommendationRequest, RecommendationResult>
{
    public override async Task<RecommendationResult> RunAsync(TaskOrchestrationContext context, RecommendationRequest request)
    {
        var space = request.Space;
        var plain = Candidate.Plain(space);
        var models = plain.Select(c => c.Quantization).Distinct().Where(q => q != "none").ToList();
        var log = new RunLog(context, 6 + (request.Deploy ? 1 : 0));
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

        // Build and score: each quantization of the space, as a plain model (accuracy level 4 and each classifier).
        step = 3;
        var built = new Dictionary<string, ModelArtifact> { ["fp32"] = baseline };
        var quality = new Dictionary<string, QualityScore>();
        var screenWork = new Workload([1], Math.Min(4, request.Requests), 1, request.OutputLengths, request.InputLengths, request.Slo);
        async Task<ModelArtifact?> Build(Candidate c, string detail)
        {
            if (built.TryGetValue(c.ModelName, out var m)) return m;
            if (Left() < budget / 2) { discarded.Add(new Discarded(c.ModelName, "budget", $"not built: half the budget ({request.Budget}) went to building and screening")); return null; }
            log.Step("build", step, detail);
            try { m = await context.CallActivityAsync<ModelArtifact>(nameof(QuantizeModel), new QuantizeInput(baseline, c.Config()!, dataset, c.ModelName), OptimizeModel.Retry); }
            catch (TaskFailedException e) when (e.FailureDetails.ErrorType == typeof(SioException).FullName)
            {
                // a setting this model cannot take (a group wider than a layer): that candidate is out, the search goes on
                discarded.Add(new Discarded(c.ModelName, "build", e.FailureDetails.ErrorMessage));
                log.Event($"could not build {c.ModelName}: {e.FailureDetails.ErrorMessage}");
                return null;
            }
            built[c.ModelName] = m;
            quality[c.ModelName] = await Run<QualityScore>("build", nameof(ScoreQuality), new ScoreInput(m, baseline, dataset), detail);
            log.Event($"built {c.ModelName}: {m.Bytes / 1e6:0.##} MB, KL divergence {quality[c.ModelName].MeanKld:G3}, perplexity +{quality[c.ModelName].PerplexityIncreasePercent:0.##} %{(m.Reused ? " (reused)" : "")}");
            return m;
        }
        quality["fp32"] = new QualityScore(0, 0, 1, 0, 0, 0, baseline.Bytes);
        var toBuild = plain.Where(c => c.Quantization != "none").DistinctBy(c => c.ModelName).ToList();
        for (int i = 0; i < toBuild.Count; i++) await Build(toBuild[i], $"{i + 1}/{toBuild.Count}: {toBuild[i].ModelName}");

        if (quality.Values.FirstOrDefault(q => q.BaselinePerplexity > 0) is { } any) // the float model's own perplexity, from any comparison
            quality["fp32"] = quality["fp32"] with { Perplexity = any.BaselinePerplexity, BaselinePerplexity = any.BaselinePerplexity, Tokens = any.Tokens };

        // Screen: quality budget, then one request at a time.
        step = 4;
        var limits = request.QualityLimits;
        var screened = new List<(Candidate C, CandidateMeasurement M)>();
        async Task<CandidateMeasurement?> Screen(Candidate c, string detail)
        {
            if (!built.TryGetValue(c.ModelName, out var model)) return null;
            if (limits.Failures(quality[c.ModelName]).ToList() is { Count: > 0 } f) { discarded.Add(new Discarded(c.Name, "quality", string.Join("; ", f))); return null; }
            if (Left() < budget / 2) { discarded.Add(new Discarded(c.Name, "budget", "not screened: half the budget went to building and screening")); return null; }
            var m = await Run<CandidateMeasurement>("screen", nameof(MeasureCandidate), new MeasureInput(c, model, dataset, screenWork), detail);
            if (m.Error is not null) { discarded.Add(new Discarded(c.Name, "screen", m.Error)); return null; }
            if (m.ExactChecked is int n && m.ExactOutputs < n) { discarded.Add(new Discarded(c.Name, "exactness", $"speculative output differed from plain decoding on {n - m.ExactOutputs} of {n} prompts")); return null; }
            log.Event($"screened {c.Name}: {m.Levels[0].OutputTokensPerSecond:0.#} tok/s, TTFT {m.Levels[0].TtftP50Ms:0.#} ms at concurrency 1");
            screened.Add((c, m));
            return m;
        }
        for (int i = 0; i < plain.Count; i++) await Screen(plain[i], $"{i + 1}/{plain.Count}: {plain[i].Name}");
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
        step = 5;
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

        step = 6;
        var seconds = (context.CurrentUtcDateTime - start).TotalSeconds;
        var published = await Run<PublishedRecommendation>("publish", nameof(PublishRecommendation), new PublishRecommendationInput(context.InstanceId, request, measured, discarded, seconds));
        bool deployed = false;
        if (request.Deploy && published.DeploymentManifest is { } manifest) { step = 7; deployed = await Run<bool>("deploy", nameof(RaiseDeployment), manifest); }
        log.Finish(published.Top is null ? "no configuration met the objectives" : $"recommended {published.Top} ({published.Entries} entries){(deployed ? "; deployed it" : "")}");
        return new RecommendationResult(context.InstanceId, published.Top, published.Entries, published.Report, deployed);
    }
}
