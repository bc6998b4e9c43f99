using Microsoft.DurableTask;

namespace Sio.Pipeline;

/// <summary>
/// The optimization run: validate → import → the recipe's techniques in order (each an artifact) →
/// benchmark the baseline and every variant (fan-out / fan-in) → quality and cost gate → publish the
/// report and the deployment manifest → raise the deployment event. Deterministic (all I/O is in
/// activities); the custom status names the current step, and a failure names the step and its reason.
/// </summary>
public sealed class OptimizeModel : TaskOrchestrator<OptimizationRequest, OptimizationResult>
{
    /// <summary>Transient faults are retried with backoff; bad input (a SioException) is not.</summary>
    public static readonly TaskOptions Retry = TaskOptions.FromRetryPolicy(new RetryPolicy(4, TimeSpan.FromSeconds(1), backoffCoefficient: 2, maxRetryInterval: TimeSpan.FromSeconds(30))
    {
        HandleFailure = f => f.ErrorType != typeof(SioException).FullName,
    });

    public override async Task<OptimizationResult> RunAsync(TaskOrchestrationContext context, OptimizationRequest request)
    {
        var recipe = Recipe.Parse(request.Recipe);
        var models = recipe.Where(t => t is not SpeculativePass).ToList();
        int steps = 5 + models.Count + (request.Deploy ? 1 : 0), step = 0;
        var log = new RunLog(context, steps);

        async Task<T> Run<T>(string name, string activity, object input, string? detail = null)
        {
            log.Step(name, ++step, detail);
            try { return await context.CallActivityAsync<T>(activity, input, Retry); }
            catch (TaskFailedException e) { throw Failed(log, name, step, e); }
        }

        var dataset = await Run<StagedDataset>("validate", nameof(ValidateRequest), request);
        var baseline = await Run<ModelArtifact>("import", nameof(ImportModel), new ImportInput(request.Model, request.Tokenizer));

        // Every prefix of the recipe is a variant: awq-int4, then awq-int4+compile, then (+ the drafter) the served setting.
        var variants = new List<(string Name, ModelArtifact Model, string Drafter)>();
        var model = baseline;
        var name = "baseline";
        foreach (var t in models)
        {
            name = variants.Count == 0 ? t.Spec : $"{name}+{t.Spec}";
            model = t switch
            {
                QuantizePass q => await Run<ModelArtifact>("quantize", nameof(QuantizeModel), new QuantizeInput(model, q.Config, dataset, name), t.Spec),
                CompilePass c => await Run<ModelArtifact>("compile", nameof(CompileModel), new CompileInput(model, c.Target, name), t.Spec),
                _ => throw new InvalidOperationException($"no activity runs {t.Spec}"),
            };
            variants.Add((name, model, "none"));
        }
        if (recipe.OfType<SpeculativePass>().FirstOrDefault() is { } spec)
            variants.Add((variants.Count == 0 ? spec.Spec : $"{name}+{spec.Spec}", model, spec.Drafter.ToString()));

        int benchStep = ++step, total = variants.Count + 1;
        log.Step("benchmark", benchStep, $"0/{total} variants measured");
        var measuring = new[] { ("baseline", baseline, "none") }.Concat(variants)
            .Select(v => context.CallActivityAsync<VariantMeasurement>(nameof(BenchmarkVariant),
                new BenchmarkInput(v.Item1, v.Item2, v.Item3, dataset, request.Benchmark, request.Instance, request.PricePerHour, v.Item1 == "baseline" ? null : baseline), Retry))
            .ToList();
        var measured = new VariantMeasurement[total];
        try
        {
            // Fan-out / fan-in, reporting each variant as it finishes.
            var pending = new List<Task<VariantMeasurement>>(measuring);
            while (pending.Count > 0)
            {
                var finished = await Task.WhenAny(pending);
                pending.Remove(finished);
                var m = measured[measuring.IndexOf(finished)] = await finished;
                log.Event(Measured(m));
                log.Step("benchmark", benchStep, $"{total - pending.Count}/{total} variants measured");
            }
        }
        catch (TaskFailedException e) { throw Failed(log, "benchmark", benchStep, e); }

        log.Step("gate", ++step);
        var decision = QualityGate.Evaluate(measured[0], measured[1..], request.Gates, request.Target);
        foreach (var c in decision.Checks)
            log.Event(c.Passed ? $"gate: {c.Variant} passed ({c.Speedup:0.00}x)" : $"gate: {c.Variant} refused: {string.Join("; ", c.Failures)}");

        var published = await Run<Published>("publish", nameof(PublishResult), new PublishInput(context.InstanceId, request, measured, decision));
        bool deployed = false;
        if (request.Deploy && published.DeploymentManifest is { } manifest)
            deployed = await Run<bool>("deploy", nameof(RaiseDeployment), manifest);
        log.Finish(decision.Passed ? $"chose {decision.Chosen}{(decision.Target == "stack" ? "" : $" (target: {decision.Target})")}{(deployed ? " and deployed it" : "")}" : "no variant passed the gate");
        return new OptimizationResult(context.InstanceId, decision.Passed, decision.Chosen, published.Report, published.DeploymentManifest, deployed,
            decision.Checks.SelectMany(c => c.Failures.Select(f => $"{c.Variant}: {f}")).ToList());
    }

    static string Measured(VariantMeasurement m)
    {
        var best = m.Levels.MaxBy(l => l.OutputTokensPerSecond);
        return best is null ? $"measured {m.Variant}" : $"measured {m.Variant}: {best.OutputTokensPerSecond:0.#} output tok/s at concurrency {best.Concurrency}" +
            $"{(m.AcceptanceRate is { } a ? $", acceptance {100 * a:0.#} %" : "")}{(m.FromBaseline is { Tokens: > 0 } d ? $", KL divergence {d.MeanKld:G3}, same top token {100 * d.SameTopToken:0.#} %" : "")}{(m.Reused ? " (reused)" : "")}";
    }

    static PipelineStepFailedException Failed(RunLog log, string step, int number, TaskFailedException e)
    {
        var reason = e.FailureDetails.ErrorMessage;
        log.Fail(step, number, reason);
        return new PipelineStepFailedException(step, reason);
    }
}

/// <summary>A run failed in one step; nothing after that step was published.</summary>
public sealed class PipelineStepFailedException(string step, string reason) : Exception($"{step} failed: {reason}")
{
    public string Step { get; } = step;
}
