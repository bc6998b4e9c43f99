using Microsoft.DurableTask;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Sio.Pipeline;

namespace Sio.Tests;

/// <summary>
/// The orchestrator's own logic, run against a scripted <see cref="TaskOrchestrationContext"/> (as durabletask-dotnet's
/// samples test orchestrators): which activities it calls, in what order and with what inputs, how it names variants,
/// what it decides from the measurements, and how a failed step ends the run. The activities themselves run for real in
/// PipelineTests and FunctionsTests.
/// </summary>
[Trait("Category", "fast")]
public class OrchestratorTests
{
    /// <summary>A replay-free context whose activities answer from <see cref="Answer"/>; every call and status is recorded.</summary>
    sealed class ScriptedContext(OptimizationRequest input) : TaskOrchestrationContext
    {
        public List<(string Activity, object? Input)> Calls { get; } = new();
        public List<PipelineStatus> Statuses { get; } = new();
        public Func<string, object?, object> Answer { get; init; } = (_, _) => throw new InvalidOperationException("no answer");

        public override TaskName Name => nameof(OptimizeModel);
        public override string InstanceId => "opt-test";
        public override ParentOrchestrationInstance? Parent => null;
        public override DateTime CurrentUtcDateTime => new(2026, 12, 3, 0, 0, 0, DateTimeKind.Utc);
        public override bool IsReplaying => false;
        protected override ILoggerFactory LoggerFactory => NullLoggerFactory.Instance;
        public override T? GetInput<T>() where T : default => (T)(object)input;

        public override Task<TResult> CallActivityAsync<TResult>(TaskName name, object? input = null, TaskOptions? options = null)
        {
            Calls.Add((name.Name, input));
            try { return Task.FromResult((TResult)Answer(name.Name, input)); }
            catch (SioException e) { return Task.FromException<TResult>(new TaskFailedException(name.Name, Calls.Count, new TaskFailureDetails(typeof(SioException).FullName!, e.Message, null, null, null))); }
        }

        public override void SetCustomStatus(object? customStatus) => Statuses.Add((PipelineStatus)customStatus!);
        public override Task CreateTimer(DateTime fireAt, CancellationToken cancellationToken) => throw new NotSupportedException();
        public override Task<T> WaitForExternalEvent<T>(string eventName, CancellationToken cancellationToken = default) => throw new NotSupportedException();
        public override void SendEvent(string instanceId, string eventName, object payload) => throw new NotSupportedException();
        public override Task<TResult> CallSubOrchestratorAsync<TResult>(TaskName orchestratorName, object? input = null, TaskOptions? options = null) => throw new NotSupportedException();
        public override void ContinueAsNew(object? newInput = null, bool preserveUnprocessedEvents = true) => throw new NotSupportedException();
        public override Guid NewGuid() => Guid.Empty;
    }

    static readonly StagedDataset Data = new("d", "sha", 10, "cal", "eval");
    static ModelArtifact Artifact(string key) => new(key, key, "float32", 1, false);

    /// <summary>Measurements: the baseline at 10 ms per token, each variant faster by <paramref name="speedup"/>, perplexity +1 %.</summary>
    static object Answer(string activity, object? input, Func<string, double>? speedup = null) => activity switch
    {
        nameof(ValidateRequest) => Data,
        nameof(ImportModel) => Artifact("base"),
        nameof(QuantizeModel) => Artifact("quantized"),
        nameof(CompileModel) => Artifact("compiled"),
        nameof(BenchmarkVariant) when input is BenchmarkInput b => new VariantMeasurement(b.Variant, b.Model, b.Drafter,
            [new LevelMeasurement(1, 100, 5, 1, 2, 1.0, 0, 10 / (b.Variant == "baseline" ? 1 : (speedup ?? (_ => 2))(b.Variant)))],
            b.Variant == "baseline" ? 3.0 : 3.03, null, null, "cpu", 1, false, b.Drafter == "none" ? null : 8, b.Drafter == "none" ? null : 8),
        nameof(PublishResult) when input is PublishInput p => new Published("reports/opt-test/report.json", p.Decision.Passed ? "deployments/opt-test.json" : null), // as PublishResult does
        nameof(RaiseDeployment) => true,
        _ => throw new InvalidOperationException(activity),
    };

    static OptimizationRequest Request(string recipe, bool deploy = true) => new()
    {
        Model = "uploads/m.zip", Dataset = "uploads/d.jsonl", Recipe = recipe, Deploy = deploy,
        Gates = new QualityGates { MaxPerplexityIncreasePercent = 5, MinSpeedup = 1.5 },
    };

    [Fact]
    public async Task EveryTechniqueStacksInOrderAndTheLastPassingVariantDeploys()
    {
        var request = Request("awq-int4:g64,compile,speculative:ngram");
        var context = new ScriptedContext(request) { Answer = (a, i) => Answer(a, i) };
        var result = await new OptimizeModel().RunAsync(context, request);

        Assert.Equal([nameof(ValidateRequest), nameof(ImportModel), nameof(QuantizeModel), nameof(CompileModel),
            nameof(BenchmarkVariant), nameof(BenchmarkVariant), nameof(BenchmarkVariant), nameof(BenchmarkVariant), nameof(PublishResult), nameof(RaiseDeployment)],
            context.Calls.Select(c => c.Activity));
        var quantize = (QuantizeInput)context.Calls[2].Input!;
        Assert.Equal(("awq", 64), (quantize.Config.Method, quantize.Config.GroupSize));
        Assert.Equal((0, "fp32"), (quantize.Config.AccuracyLevel, quantize.Config.LmHead)); // served speculatively: the exact kernel
        Assert.Equal("base", quantize.Model.Key);
        Assert.Equal("quantized", ((CompileInput)context.Calls[3].Input!).Model.Key);
        var benchmarks = context.Calls.Where(c => c.Activity == nameof(BenchmarkVariant)).Select(c => (BenchmarkInput)c.Input!).ToList();
        Assert.Equal(["baseline", "awq-int4:g64", "awq-int4:g64+compile", "awq-int4:g64+compile+speculative:ngram"], benchmarks.Select(b => b.Variant));
        Assert.Equal(["base", "quantized", "compiled", "compiled"], benchmarks.Select(b => b.Model.Key));
        Assert.Equal(["none", "none", "none", "ngram"], benchmarks.Select(b => b.Drafter));
        Assert.True(result.Passed);
        Assert.Equal("awq-int4:g64+compile+speculative:ngram", result.Chosen);
        Assert.True(result.Deployed);
        Assert.Equal("done", context.Statuses[^1].Step);
        Assert.Equal(["validate", "import", "quantize", "compile", "benchmark", "gate", "publish", "deploy"], context.Statuses.Select(s => s.Step).Distinct().SkipLast(1));
    }

    [Fact]
    public async Task WithoutSpeculationQuantizationTakesTheFastKernelAndAFailedGateDeploysNothing()
    {
        var request = Request("rtn-int4");
        var context = new ScriptedContext(request) { Answer = (a, i) => Answer(a, i, _ => 1.2) }; // under the 1.5x gate
        var result = await new OptimizeModel().RunAsync(context, request);

        var quantize = (QuantizeInput)context.Calls.Single(c => c.Activity == nameof(QuantizeModel)).Input!;
        Assert.Equal((4, "int8"), (quantize.Config.AccuracyLevel, quantize.Config.LmHead));
        Assert.False(result.Passed);
        Assert.Null(result.Chosen);
        Assert.Contains(result.Reasons, f => f.Contains("speedup 1.20x is under the 1.5x required"));
        var publish = (PublishInput)context.Calls.Single(c => c.Activity == nameof(PublishResult)).Input!;
        Assert.False(publish.Decision.Passed);
        Assert.DoesNotContain(context.Calls, c => c.Activity == nameof(RaiseDeployment));
        Assert.False(result.Deployed);
        Assert.Equal("no variant passed the gate", context.Statuses[^1].Detail);
    }

    [Fact]
    public async Task AFailedStepEndsTheRunNamingTheStep()
    {
        var request = Request("awq-int4,speculative:ngram");
        var context = new ScriptedContext(request)
        {
            Answer = (a, i) => a == nameof(ImportModel) ? throw new SioException("uploads/m.zip is not in the uploads container") : Answer(a, i),
        };
        var e = await Assert.ThrowsAsync<PipelineStepFailedException>(() => new OptimizeModel().RunAsync(context, request));
        Assert.Equal("import", e.Step);
        Assert.Equal("import failed: uploads/m.zip is not in the uploads container", e.Message);
        Assert.Equal([nameof(ValidateRequest), nameof(ImportModel)], context.Calls.Select(c => c.Activity)); // nothing after the failed step
        Assert.Equal(("import", "uploads/m.zip is not in the uploads container"), (context.Statuses[^1].FailedStep, context.Statuses[^1].Error));
    }
}
