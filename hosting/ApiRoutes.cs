using Microsoft.AspNetCore.Http;

namespace Sio.Hosting;

/// <summary>
/// sio's one HTTP surface. `sio up`, `sio serve` and both Function Apps serve exactly this table (ASP.NET hosts map it
/// with <see cref="RouteMapping.MapApiRoutes"/>, the Function Apps dispatch to it from one catch-all trigger with
/// <see cref="RouteDispatcher"/>), so every route exists on every host.
/// </summary>
public static class ApiRoutes
{
    public static IReadOnlyList<ApiRoute> Table(HostServices host)
    {
        var pipeline = new PipelineRoutes(host);
        var openAi = new OpenAiRoutes(host);
        return
        [
            new("GET", "/", "Console", WebConsole.Serve("index.html")),
            new("GET", "/console.css", "ConsoleStyles", WebConsole.Serve("console.css")),
            new("GET", "/console.js", "ConsoleScript", WebConsole.Serve("console.js")),
            new("GET", "/healthz", "Health", OpenAiRoutes.Health),
            new("GET", "/readyz", "Ready", openAi.Ready),
            new("GET", "/metrics", "Metrics", host.Metrics),

            new("GET", "/v1/models", "ListModels", openAi.Models),
            new("GET", "/v1/models/{id}", "GetModel", openAi.Model),
            new("POST", "/v1/completions", "Completions", c => openAi.Complete(c, chat: false)),
            new("POST", "/v1/chat/completions", "ChatCompletions", c => openAi.Complete(c, chat: true)),

            new("POST", "/api/optimizations", "StartOptimization", pipeline.Start),
            new("GET", "/api/optimizations", "ListOptimizations", pipeline.List),
            new("POST", "/api/optimizations/validate", "ValidateOptimization", pipeline.Validate),
            new("GET", "/api/optimizations/{id}", "GetOptimization", pipeline.Status),
            new("DELETE", "/api/optimizations/{id}", "CancelOptimization", pipeline.Cancel),
            new("GET", "/api/optimizations/{id}/report", "GetReport", pipeline.Report),
            new("POST", "/api/recommendations", "StartRecommendation", pipeline.Recommend),
            new("GET", "/api/recommendations", "ListRecommendations", pipeline.Recommendations),
            new("GET", "/api/recommendations/{id}", "GetRecommendation", pipeline.Recommendation),
            new("DELETE", "/api/recommendations/{id}", "CancelRecommendation", pipeline.CancelRecommendation),
            new("PUT", "/api/uploads/{**name}", "Upload", pipeline.Upload),
            new("GET", "/api/uploads", "ListUploads", pipeline.Uploads),
            new("GET", "/api/models", "ListImportedModels", pipeline.Models),
            new("POST", "/api/models", "ImportModel", pipeline.Import),
            new("GET", "/api/deployments", "ListDeployments", pipeline.Deployments),
            new("POST", "/api/deployments", "Deploy", pipeline.Deploy),
            new("GET", "/api/instances", "ListInstances", PipelineRoutes.Instances),
        ];
    }

    /// <summary>What a caller without the key may fetch: liveness, and the console's static page (it holds no data and asks for the key).</summary>
    public static readonly string[] PublicPaths = ["/healthz", "/", "/console.js", "/console.css"];

    public static bool IsPublic(HttpRequest r) => (HttpMethods.IsGet(r.Method) || HttpMethods.IsHead(r.Method)) && PublicPaths.Contains(r.Path.Value);
}
