using Microsoft.Extensions.DependencyInjection;

namespace Sio.Pipeline;

/// <summary>The pipeline's services for a host's container: its options, the artifact repository and one instance of each step.</summary>
public static class PipelineServices
{
    public static IServiceCollection AddSioPipeline(this IServiceCollection services, PipelineOptions options)
    {
        services.AddSingleton(options);
        services.AddSingleton<ArtifactRepository>();
        services.AddSingleton<ValidateRequest>();
        services.AddSingleton<ImportModel>();
        services.AddSingleton<QuantizeModel>();
        services.AddSingleton<CompileModel>();
        services.AddSingleton<BenchmarkVariant>();
        services.AddSingleton<PublishResult>();
        services.AddSingleton<RaiseDeployment>();
        services.AddSingleton<Recommendation.ScoreQuality>();
        services.AddSingleton<Recommendation.MeasureCandidate>();
        services.AddSingleton<Recommendation.PublishRecommendation>();
        services.AddSingleton<Recommendation.SearchMixedPrecision>();
        return services;
    }
}
