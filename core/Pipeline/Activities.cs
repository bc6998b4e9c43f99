using Microsoft.DurableTask;

namespace Sio.Pipeline;

/// <summary>
/// Registers the orchestrator and its activities (each step is one activity class: <see cref="ValidateRequest"/>,
/// <see cref="ImportModel"/>, <see cref="QuantizeModel"/>, <see cref="CompileModel"/>, <see cref="BenchmarkVariant"/>,
/// <see cref="PublishResult"/>, <see cref="RaiseDeployment"/>), and the recommendation job's (<see cref="Recommendation.RecommendConfigurations"/>
/// with <see cref="Recommendation.ScoreQuality"/>, <see cref="Recommendation.MeasureCandidate"/> and <see cref="Recommendation.PublishRecommendation"/>,
/// besides the pipeline's own steps), built from the host's services.
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
        registry.AddOrchestrator<Recommendation.RecommendConfigurations>();
        registry.AddActivity<Recommendation.ScoreQuality>();
        registry.AddActivity<Recommendation.MeasureCandidate>();
        registry.AddActivity<Recommendation.PublishRecommendation>();
        registry.AddActivity<Recommendation.SearchMixedPrecision>();
    }
}
