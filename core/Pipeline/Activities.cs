using Microsoft.DurableTask;

namespace Sio.Pipeline;

// The activities: thin Durable Task wrappers over PipelineSteps (one method each), so that every
// host (the self-host worker, the Functions app, the CLI) runs the same code.

public sealed class ValidateRequest(PipelineSteps steps) : TaskActivity<OptimizationRequest, StagedDataset>
{
    public override Task<StagedDataset> RunAsync(TaskActivityContext context, OptimizationRequest input) => steps.ValidateAsync(input);
}

public sealed class ImportModel(PipelineSteps steps) : TaskActivity<ImportInput, ModelArtifact>
{
    public override Task<ModelArtifact> RunAsync(TaskActivityContext context, ImportInput input) => steps.ImportAsync(input);
}

public sealed class QuantizeModel(PipelineSteps steps) : TaskActivity<QuantizeInput, ModelArtifact>
{
    public override Task<ModelArtifact> RunAsync(TaskActivityContext context, QuantizeInput input) => steps.QuantizeAsync(input);
}

public sealed class CompileModel(PipelineSteps steps) : TaskActivity<CompileInput, ModelArtifact>
{
    public override Task<ModelArtifact> RunAsync(TaskActivityContext context, CompileInput input) => steps.CompileAsync(input);
}

public sealed class BenchmarkVariant(PipelineSteps steps) : TaskActivity<BenchmarkInput, VariantMeasurement>
{
    public override Task<VariantMeasurement> RunAsync(TaskActivityContext context, BenchmarkInput input) => steps.BenchmarkAsync(input);
}

public sealed class PublishResult(PipelineSteps steps) : TaskActivity<PublishInput, Published>
{
    public override Task<Published> RunAsync(TaskActivityContext context, PublishInput input) => steps.PublishAsync(input);
}

public sealed class RaiseDeployment(PipelineSteps steps) : TaskActivity<string, bool>
{
    public override Task<bool> RunAsync(TaskActivityContext context, string manifest) => steps.DeployAsync(manifest);
}

/// <summary>Registers the orchestrator and its activities.</summary>
public static class PipelineTasks
{
    public static void Register(DurableTaskRegistry registry)
    {
        registry.AddOrchestrator<OptimizeModel>();
        registry.AddActivity<ValidateRequest>();
        registry.AddActivity<ImportModel>();
        registry.AddActivity<QuantizeModel>();
        registry.AddActivity<CompileModel>();
        registry.AddActivity<BenchmarkVariant>();
        registry.AddActivity<PublishResult>();
        registry.AddActivity<RaiseDeployment>();
    }
}
