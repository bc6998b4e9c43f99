using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Sio.Artifacts;
using Sio.Pipeline;

namespace Sio.Recommendation;

/// <summary>
/// The recommendation API, on every host that runs the pipeline: POST /api/recommendations (202 + Location),
/// GET /api/recommendations[/{id}] (status and events while it runs; the ranked recommendation once it has ended),
/// DELETE /api/recommendations/{id}. Entries deploy through POST /api/deployments {"runId", "variant"}.
/// </summary>
public sealed class RecommendationApi(DurableTaskClient client, ArtifactRepository artifacts)
{
    public async Task<ApiResult> StartAsync(Stream body, string baseUrl, CancellationToken ct = default)
    {
        var (request, problem) = await OptimizationApi.ReadAsync<RecommendationRequest>(body, "a recommendation", ct);
        return problem ?? await StartAsync(request!, baseUrl, ct);
    }

    /// <summary>Problems of the request that depend on this worker: the instances its measurements can stand for.</summary>
    public Dictionary<string, string[]> Problems(RecommendationRequest request)
    {
        var problems = request.Problems();
        if (!problems.ContainsKey("instances"))
        {
            var (measured, notMeasured) = MeasuredInstances.Split(MeasuredInstances.Considered(request), artifacts.Options.ModelOptions.Provider, Environment.ProcessorCount);
            if (measured.Count == 0) problems["instances"] = [$"no instance considered can be measured on this worker: {string.Join("; ", notMeasured)}"];
        }
        return problems;
    }

    public async Task<ApiResult> StartAsync(RecommendationRequest request, string baseUrl, CancellationToken ct = default)
    {
        var problems = Problems(request);
        if (problems.Count > 0)
            return ApiResult.Fail(400, "The recommendation request is invalid", string.Join("; ", problems.SelectMany(p => p.Value.Select(m => $"{p.Key}: {m}"))), problems);
        var id = request.InstanceId();
        var existing = await client.GetInstanceAsync(id, ct);
        bool duplicate = existing is not null && existing.RuntimeStatus is not (OrchestrationRuntimeStatus.Failed or OrchestrationRuntimeStatus.Terminated);
        if (!duplicate) await client.ScheduleNewOrchestrationInstanceAsync(nameof(RecommendConfigurations), request, new StartOrchestrationOptions(id), ct);
        var url = Url(baseUrl, id);
        return new ApiResult(202, new { id, duplicate, statusQueryGetUri = url }, url, RetryAfterSeconds: OptimizationApi.PollSeconds);
    }

    static string Url(string baseUrl, string id) => $"{baseUrl.TrimEnd('/')}/api/recommendations/{id}";

    public async Task<ApiResult> StatusAsync(string id, string baseUrl, CancellationToken ct = default)
    {
        var m = await client.GetInstanceAsync(id, getInputsAndOutputs: true, ct);
        if (m is null || m.Name != nameof(RecommendConfigurations)) return ApiResult.Fail(404, "No such recommendation", $"no recommendation has the id '{id}'");
        var described = await DescribeAsync(m, baseUrl, ct);
        return m.IsCompleted ? new ApiResult(200, described) : new ApiResult(202, described, Url(baseUrl, id), RetryAfterSeconds: OptimizationApi.PollSeconds);
    }

    public async Task<ApiResult> ListAsync(string baseUrl, CancellationToken ct = default)
    {
        var list = new List<object>();
        await foreach (var m in client.GetAllInstancesAsync(new OrchestrationQuery { FetchInputsAndOutputs = true }).WithCancellation(ct))
            if (m.Name == nameof(RecommendConfigurations)) list.Add(await DescribeAsync(m, baseUrl, ct, withResult: false));
        return new ApiResult(200, new { recommendations = list });
    }

    public Task<ApiResult> CancelAsync(string id, CancellationToken ct = default) =>
        OptimizationApi.CancelAsync(client, id, "recommendation", nameof(RecommendConfigurations), ct);

    async Task<object> DescribeAsync(OrchestrationMetadata m, string baseUrl, CancellationToken ct, bool withResult = true)
    {
        PipelineStatus? status = null;
        try { status = m.ReadCustomStatusAs<PipelineStatus>(); } catch (JsonException) { }
        RecommendationRequest? input = null;
        try { input = m.SerializedInput is null ? null : m.ReadInputAs<RecommendationRequest>(); } catch (JsonException) { }
        JsonNode? recommendation = null;
        if (withResult && m.RuntimeStatus == OrchestrationRuntimeStatus.Completed && await artifacts.Store.GetTextAsync(Containers.Reports, $"{m.InstanceId}/recommendation.json", ct) is { } text)
            recommendation = JsonNode.Parse(text);
        var ended = m.IsCompleted;
        return new
        {
            id = m.InstanceId, runtimeStatus = m.RuntimeStatus.ToString(), createdAt = m.CreatedAt, lastUpdatedAt = m.LastUpdatedAt,
            durationSeconds = Math.Round(((ended ? m.LastUpdatedAt : DateTimeOffset.UtcNow) - m.CreatedAt).TotalSeconds, 1),
            step = status?.Step, stepNumber = status?.StepNumber, steps = status?.Steps, detail = status?.Detail, stepTimes = status?.Done ?? [], events = status?.Events ?? [],
            failedStep = status?.FailedStep, error = m.FailureDetails?.ErrorMessage,
            input = input is null ? null : new { input.Model, input.Dataset, input.Target, input.Budget },
            output = m.RuntimeStatus == OrchestrationRuntimeStatus.Completed ? m.ReadOutputAs<RecommendationResult>() : null,
            recommendation, statusQueryGetUri = Url(baseUrl, m.InstanceId),
        };
    }
}
