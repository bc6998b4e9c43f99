using Microsoft.DurableTask;

namespace Sio.Pipeline;

/// <summary>
/// Registers the orchestrator and its activities (each step is one activity class: <see cref="ValidateRequest"/>,
/// <see cref="ImportModel"/>, <see cref="QuantizeModel"/>, <see cref="CompileModel"/>, <see cref="BenchmarkVariant"/>,
/// <see cref="PublishResult"/>, <see cref="RaiseDeployment"/>), built from the host's services.
/// </summary>
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
