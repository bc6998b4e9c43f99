using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Sio.Pipeline;

namespace Sio.Hosting;

/// <summary>The pipeline API's routes: each reads the request, calls <see cref="OptimizationApi"/> and writes its <see cref="ApiResult"/>.</summary>
sealed class PipelineRoutes(HostServices host)
{
    static string BaseUrl(HttpContext c) => $"{c.Request.Scheme}://{c.Request.Host}";
    static string Id(HttpContext c) => (string)c.Request.RouteValues["id"]!;

    Task Run(HttpContext c, Func<OptimizationApi, Task<ApiResult>> call) => host.Pipeline(c) is { } api
        ? Continue(c, call(api))
        : ApiResults.Write(c, ApiResult.Fail(501, "No pipeline on this host", $"{host.Name} does not run the optimization pipeline; `sio up` and the optimizer Function App do"));

    static async Task Continue(HttpContext c, Task<ApiResult> result) => await ApiResults.Write(c, await result);

    public Task Start(HttpContext c) => Run(c, api => api.StartAsync(c.Request.Body, BaseUrl(c), c.RequestAborted));
    public Task List(HttpContext c) => Run(c, api => api.ListAsync(BaseUrl(c), c.RequestAborted));
    public Task Validate(HttpContext c) => Run(c, api => api.ValidateAsync(c.Request.Body, c.RequestAborted));
    public Task Status(HttpContext c) => Run(c, api => api.StatusAsync(Id(c), BaseUrl(c), c.RequestAborted));
    public Task Cancel(HttpContext c) => Run(c, api => api.CancelAsync(Id(c), c.RequestAborted));
    public Task Report(HttpContext c) => Run(c, api => api.ReportAsync(Id(c), c.RequestAborted));
    public Task Uploads(HttpContext c) => Run(c, api => api.UploadsAsync(c.RequestAborted));
    public Task Models(HttpContext c) => Run(c, api => api.ModelsAsync(c.RequestAborted));
    public Task Import(HttpContext c) => Run(c, api => api.ImportAsync(c.Request.Body, c.RequestAborted));
    public Task Deployments(HttpContext c) => Run(c, api => api.DeploymentsAsync(c.RequestAborted));
    public Task Recommend(HttpContext c) => Run(c, api => api.Recommendations.StartAsync(c.Request.Body, BaseUrl(c), c.RequestAborted));
    public Task Recommendations(HttpContext c) => Run(c, api => api.Recommendations.ListAsync(BaseUrl(c), c.RequestAborted));
    public Task Recommendation(HttpContext c) => Run(c, api => api.Recommendations.StatusAsync(Id(c), BaseUrl(c), c.RequestAborted));
    public Task CancelRecommendation(HttpContext c) => Run(c, api => api.Recommendations.CancelAsync(Id(c), c.RequestAborted));
    public static Task Instances(HttpContext c) => ApiResults.Write(c, OptimizationApi.Instances());

    public Task Upload(HttpContext c)
    {
        // the API enforces --max-upload-mb itself, with a 413 it can explain
        if (c.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit) limit.MaxRequestBodySize = null;
        var name = (string)c.Request.RouteValues["name"]!;
        return Run(c, api => api.UploadAsync(name, c.Request.Body, c.Request.ContentLength, c.RequestAborted));
    }

    /// <summary>
    /// POST /api/deployments: a published variant ({"runId"}, {"runId", "variant"}, {"deployment"}) through the pipeline,
    /// or a local model folder ({"model": FOLDER}) swapped in at once where the operator allowed local paths.
    /// </summary>
    public async Task Deploy(HttpContext c)
    {
        JsonNode? body;
        try { body = await JsonNode.ParseAsync(c.Request.Body, cancellationToken: c.RequestAborted); }
        catch (JsonException e) { await ApiResults.Write(c, ApiResult.Fail(400, "The body is not valid JSON", e.Message, new() { ["body"] = [e.Message] })); return; }
        if (body is JsonObject o && o.ContainsKey("model")) await ApiResults.Write(c, SwapToFolder(o["model"]));
        else await Run(c, api => api.DeployAsync(body, c.RequestAborted));
    }

    ApiResult SwapToFolder(JsonNode? model)
    {
        if (host.Deployments is not { } deployments)
            return ApiResult.Fail(501, "No model serving on this host", $"{host.Name} serves no model; deploy a run by {{\"runId\": \"ID\"}}");
        if (host.LoadFolder is not { } load)
            return ApiResult.Fail(403, "Local paths are off", "deploying a local folder needs the server started with --allow-local-paths", new() { ["model"] = ["local paths are off"] });
        var dir = model is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;
        if (string.IsNullOrEmpty(dir)) return ApiResult.Fail(400, "No model folder", "the body must be {\"model\": \"MODEL FOLDER\"}", new() { ["model"] = ["required"] });
        try
        {
            var d = deployments.Swap(load(dir));
            return new ApiResult(200, new { model = d.Id, folder = d.Folder });
        }
        catch (SioException e) { return ApiResult.Fail(400, "The model could not be loaded", e.Message, new() { ["model"] = [e.Message] }); }
        catch (Exception e) when (e is Microsoft.ML.OnnxRuntime.OnnxRuntimeException or IOException or UnauthorizedAccessException)
        {
            return ApiResult.Fail(500, "Loading the model failed", $"loading {dir} failed: {e.Message}");
        }
    }
}
