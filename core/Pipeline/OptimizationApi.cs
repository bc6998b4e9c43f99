using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Sio.Artifacts;
using Sio.Speculative;

namespace Sio.Pipeline;

/// <summary>An HTTP answer, independent of the host that writes it: a status, a JSON body, and a Location or Retry-After header.</summary>
public sealed record ApiResult(int Status, object? Body, string? Location = null, bool Problem = false, int? RetryAfterSeconds = null)
{
    /// <summary>RFC 7807 problem details; <paramref name="errors"/> names the fields at fault.</summary>
    public static ApiResult Fail(int status, string title, string detail, Dictionary<string, string[]>? errors = null) =>
        new(status, new { type = "about:blank", title, status, detail, errors }, Problem: true);
}

/// <summary>
/// The pipeline's HTTP API, shared by `sio up` and the Functions app:
/// POST /api/optimizations (202 + Location), GET /api/optimizations[/{id}[/report]], DELETE /api/optimizations/{id},
/// PUT /api/uploads/{name}, GET /api/uploads, POST /api/deployments, GET /api/deployments.
/// </summary>
/// <param name="claims">Cross-process start claims, for task hubs whose backend cannot refuse a concurrent duplicate itself (Azure Storage); null otherwise.</param>
public sealed class OptimizationApi(DurableTaskClient client, ArtifactRepository artifacts, ImportModel import, RaiseDeployment deploy, RunClaims? claims = null)
{
    IObjectStore Store => artifacts.Store;
    PipelineOptions Options => artifacts.Options;

    /// <summary>The recommendation jobs on the same task hub and store.</summary>
    public Recommendation.RecommendationApi Recommendations => new(client, artifacts);

    public async Task<ApiResult> StartAsync(Stream body, string baseUrl, CancellationToken ct = default)
    {
        var (request, problem) = await ReadAsync<OptimizationRequest>(body, "an optimization", ct);
        return problem ?? await StartAsync(request!, baseUrl, ct: ct);
    }

    /// <summary>A request body as <typeparamref name="T"/>, or the 400 that names what is wrong with it (the field where the JSON breaks).</summary>
    internal static async Task<(T? Request, ApiResult? Problem)> ReadAsync<T>(Stream body, string what, CancellationToken ct) where T : class
    {
        T? request;
        try { request = await JsonSerializer.DeserializeAsync<T>(body, OptimizationRequest.Json, ct); }
        catch (JsonException e)
        {
            var field = e.Path is { Length: > 2 } p ? p.TrimStart('$', '.') : "body";
            return (null, ApiResult.Fail(400, $"The request is not valid JSON for {what}", e.Message, new() { [field] = [e.Message] }));
        }
        return request is null ? (null, ApiResult.Fail(400, "The request body is empty", $"send a JSON {what[(what.IndexOf(' ') + 1)..]} request", new() { ["body"] = ["required"] })) : (request, null);
    }

    /// <summary>Starts (or finds) the run of a request; the id is derived from the request, so a duplicate does not start a second run.</summary>
    public async Task<ApiResult> StartAsync(OptimizationRequest request, string baseUrl, string? instanceId = null, CancellationToken ct = default)
    {
        var problems = request.Problems();
        if (problems.Count > 0)
            return ApiResult.Fail(400, "The optimization request is invalid", string.Join("; ", problems.SelectMany(p => p.Value.Select(m => $"{p.Key}: {m}"))), problems);
        var id = instanceId ?? request.InstanceId();
        bool duplicate = !await TryScheduleAsync(id, request, ct);
        var urls = Urls(baseUrl, id);
        return new ApiResult(202, new { id, duplicate, urls.statusQueryGetUri, urls.cancelUri, urls.reportUri }, urls.statusQueryGetUri, RetryAfterSeconds: PollSeconds);
    }

    /// <summary>Statuses in which a run holds its id: starting the same request again answers duplicate (a failed or cancelled run may be started again).</summary>
    static readonly OrchestrationRuntimeStatus[] Live =
        [OrchestrationRuntimeStatus.Pending, OrchestrationRuntimeStatus.Running, OrchestrationRuntimeStatus.Suspended, OrchestrationRuntimeStatus.Completed];

    /// <summary>
    /// Starts the run unless one holds the id, atomically on every backend: the backend itself refuses a second start
    /// while the id is <see cref="Live"/> (its dedupe check and the creation are one step), so of two identical requests
    /// at once exactly one schedules and the other is told duplicate (with Azure Storage, whose check is a read then a
    /// write, a <see cref="RunClaims"/> claim decides first). False when the run already existed.
    /// </summary>
    async Task<bool> TryScheduleAsync(string id, OptimizationRequest request, CancellationToken ct)
    {
        var existing = await client.GetInstanceAsync(id, ct);
        if (existing is not null && Live.Contains(existing.RuntimeStatus)) return false;
        var observed = existing is null ? "new" : $"after-{existing.CreatedAt.UtcTicks}";
        if (claims is not null && !await claims.TryClaimAsync(id, observed, async () => await client.GetInstanceAsync(id, ct) is { } now && Live.Contains(now.RuntimeStatus), ct))
            return false;
        try
        {
            await client.ScheduleNewOrchestrationInstanceAsync(nameof(OptimizeModel), request, new StartOrchestrationOptions(id).WithDedupeStatuses(Live), ct);
            return true;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // the backend refused because another caller started it first; anything else is a real failure
            if (await client.GetInstanceAsync(id, CancellationToken.None) is { } now && Live.Contains(now.RuntimeStatus)) return false;
            throw;
        }
    }

    static (string statusQueryGetUri, string cancelUri, string reportUri) Urls(string baseUrl, string id)
    {
        var s = $"{baseUrl.TrimEnd('/')}/api/optimizations/{id}";
        return (s, s, s + "/report");
    }

    /// <summary>How long a client should wait before polling a run again (Retry-After).</summary>
    public const int PollSeconds = 5;

    /// <summary>
    /// A run's status, by Durable Functions' HTTP conventions: 202 with Location (this URL) and Retry-After while it is
    /// pending, running or suspended; 200 once it has ended (completed, failed or cancelled), with the output or the error.
    /// </summary>
    public async Task<ApiResult> StatusAsync(string id, string baseUrl, CancellationToken ct = default)
    {
        var m = await client.GetInstanceAsync(id, getInputsAndOutputs: true, ct);
        if (m is null) return ApiResult.Fail(404, "No such optimization", $"no optimization has the id '{id}'");
        if (m.RuntimeStatus is OrchestrationRuntimeStatus.Pending or OrchestrationRuntimeStatus.Running or OrchestrationRuntimeStatus.Suspended)
            return new ApiResult(202, Describe(m, baseUrl), Urls(baseUrl, id).statusQueryGetUri, RetryAfterSeconds: PollSeconds);
        return new ApiResult(200, Describe(m, baseUrl));
    }

    static object Describe(OrchestrationMetadata m, string baseUrl)
    {
        PipelineStatus? status = null;
        try { status = m.ReadCustomStatusAs<PipelineStatus>(); } catch (JsonException) { }
        OptimizationResult? output = null;
        if (m.RuntimeStatus == OrchestrationRuntimeStatus.Completed) output = m.ReadOutputAs<OptimizationResult>();
        OptimizationRequest? input = null;
        try { input = m.SerializedInput is null ? null : m.ReadInputAs<OptimizationRequest>(); } catch (JsonException) { }
        var urls = Urls(baseUrl, m.InstanceId);
        var ended = m.RuntimeStatus is not (OrchestrationRuntimeStatus.Pending or OrchestrationRuntimeStatus.Running or OrchestrationRuntimeStatus.Suspended);
        return new
        {
            id = m.InstanceId, runtimeStatus = m.RuntimeStatus.ToString(), createdAt = m.CreatedAt, lastUpdatedAt = m.LastUpdatedAt,
            durationSeconds = Math.Round(((ended ? m.LastUpdatedAt : DateTimeOffset.UtcNow) - m.CreatedAt).TotalSeconds, 1),
            step = status?.Step, stepNumber = status?.StepNumber, steps = status?.Steps, detail = status?.Detail,
            stepTimes = status?.Done ?? [], events = status?.Events ?? [],
            failedStep = status?.FailedStep ?? (m.FailureDetails is { } f && f.ErrorMessage.Contains(" failed: ") ? f.ErrorMessage.Split(" failed: ")[0] : null),
            error = m.FailureDetails?.ErrorMessage,
            input = input is null ? null : new { input.Model, input.Recipe, input.Dataset }, output, urls.statusQueryGetUri, urls.reportUri,
        };
    }

    public async Task<ApiResult> ListAsync(string baseUrl, CancellationToken ct = default)
    {
        var list = new List<object>();
        await foreach (var m in client.GetAllInstancesAsync(new OrchestrationQuery { FetchInputsAndOutputs = true }).WithCancellation(ct))
            if (m.Name == nameof(OptimizeModel)) list.Add(Describe(m, baseUrl));
        return new ApiResult(200, new { optimizations = list });
    }

    public Task<ApiResult> CancelAsync(string id, CancellationToken ct = default) => CancelAsync(client, id, "optimization", null, ct);

    /// <summary>Terminates a running orchestration (of <paramref name="orchestrator"/> when given): 202, 404 when there is none, 409 when it has ended.</summary>
    internal static async Task<ApiResult> CancelAsync(DurableTaskClient client, string id, string kind, string? orchestrator, CancellationToken ct)
    {
        var m = await client.GetInstanceAsync(id, ct);
        if (m is null || (orchestrator is not null && m.Name != orchestrator)) return ApiResult.Fail(404, $"No such {kind}", $"no {kind} has the id '{id}'");
        if (m.IsCompleted) return ApiResult.Fail(409, $"The {kind} has already ended", $"'{id}' is {m.RuntimeStatus}");
        await client.TerminateInstanceAsync(id, "cancelled", ct);
        return new ApiResult(202, new { id, cancelling = true });
    }

    public async Task<ApiResult> ReportAsync(string id, CancellationToken ct = default)
    {
        var m = await client.GetInstanceAsync(id, ct);
        if (m is null) return ApiResult.Fail(404, "No such optimization", $"no optimization has the id '{id}'");
        var text = await Store.GetTextAsync(Containers.Reports, $"{id}/report.json", ct);
        if (text is null) return ApiResult.Fail(409, "No report yet", $"'{id}' is {m.RuntimeStatus}; the report is published when it completes");
        return new ApiResult(200, JsonNode.Parse(text));
    }

    /// <summary>
    /// Deploys a published variant: {"runId": "..."} (the variant the gate chose), {"runId": "...", "variant": "NAME"}
    /// (any measured variant of the run), or {"deployment": "deployments/NAME.json"}.
    /// </summary>
    public async Task<ApiResult> DeployAsync(JsonNode? node, CancellationToken ct = default)
    {
        string? name = null, run = null, variant = null;
        try
        {
            run = node?["runId"]?.GetValue<string>();
            variant = node?["variant"]?.GetValue<string>();
            name = node?["deployment"]?.GetValue<string>() ?? (run is not null && variant is null ? $"{run}.json" : null);
        }
        catch (InvalidOperationException) { }
        if (run is not null && variant is not null)
        {
            try { Containers.CheckName(run, "runId"); }
            catch (SioException e) { return ApiResult.Fail(400, "Bad run id", e.Message, new() { ["runId"] = [e.Message] }); }
            var report = await Store.GetTextAsync(Containers.Reports, $"{run}/report.json", ct);
            if (report is null) return ApiResult.Fail(404, "No such report", $"run '{run}' has no report (it has not completed)");
            var reportNode = JsonNode.Parse(report);
            var v = reportNode?["variants"]?.AsArray().FirstOrDefault(x => x?["variant"]?.GetValue<string>() == variant);
            if (v is null) return ApiResult.Fail(404, "No such variant", $"run '{run}' measured no variant '{variant}'", new() { ["variant"] = ["unknown"] });
            if (DeploymentManifest.Parse(await Store.GetTextAsync(Containers.Deployments, $"{run}.json", ct))?.Variant == variant)
                name = $"{run}.json"; // the gate's choice, published with the report: the same deployment, not a second one
            else
            {
                var m = v.Deserialize<VariantMeasurement>(OptimizationRequest.Json)!;
                var check = reportNode?["gate"]?["checks"]?.AsArray().FirstOrDefault(c => c?["variant"]?.GetValue<string>() == variant);
                var speedup = variant == "baseline" ? 1 : check?["speedup"]?.GetValue<double>() ?? 0;
                var safe = DeploymentManifest.SafeName(variant);
                name = $"{run}--{safe}.json";
                var manifest = DeploymentManifest.For($"{run}--{safe}", run, m, speedup, m.CheapestPricePerMillionTokens);
                await Store.PutTextAsync(Containers.Deployments, name, manifest.ToJson(), ct);
            }
        }
        if (string.IsNullOrEmpty(name)) return ApiResult.Fail(400, "Nothing to deploy", "send {\"runId\": \"ID\"}, {\"runId\": \"ID\", \"variant\": \"NAME\"} or {\"deployment\": \"deployments/NAME.json\"}", new() { ["runId"] = ["required"] });
        var bare = name.StartsWith(Containers.Deployments + "/") ? name[(Containers.Deployments.Length + 1)..] : name;
        try { Containers.CheckName(bare, "deployment"); }
        catch (SioException e) { return ApiResult.Fail(400, "Bad deployment name", e.Message, new() { ["deployment"] = [e.Message] }); }
        if (!await Store.ExistsAsync(Containers.Deployments, bare, ct))
            return ApiResult.Fail(404, "No such deployment", $"{Containers.Deployments}/{bare} does not exist (a run publishes one when its variant passes the gate)");
        try { await deploy.RunAsync(bare); }
        catch (SioException e) { return ApiResult.Fail(400, "The deployment failed", e.Message); }
        return new ApiResult(200, JsonNode.Parse((await Store.GetTextAsync(Containers.Deployments, bare, ct))!));
    }

    /// <summary>Imported models (artifacts/models/KEY), with their name, dtype, size and vocabulary.</summary>
    public async Task<ApiResult> ModelsAsync(CancellationToken ct = default)
    {
        var list = new List<object>();
        foreach (var o in await Store.ListAsync(Containers.Artifacts, ArtifactRepository.ModelsPrefix + "/", ct))
        {
            if (!o.Name.EndsWith("/" + ArtifactFolders.ManifestFile)) continue;
            var key = o.Name.Split('/')[1];
            var m = await ArtifactFolders.FindAsync(Store, Containers.Artifacts, ArtifactRepository.ModelsPrefix, key, ct);
            var sio = await Store.GetTextAsync(Containers.Artifacts, $"{ArtifactRepository.ModelsPrefix}/{key}/{Models.ModelManifest.FileName}", ct);
            var tok = sio is null ? null : JsonNode.Parse(sio)?["tokenizer"];
            list.Add(new
            {
                reference = $"{ArtifactRepository.ModelRefPrefix}{key}", key, name = m?.Metadata.GetValueOrDefault("name"), dtype = m?.Metadata.GetValueOrDefault("dtype"),
                bytes = long.TryParse(m?.Metadata.GetValueOrDefault("bytes"), out var b) ? b : 0, createdUtc = m?.CreatedUtc,
                vocabSize = tok?["vocab_size"]?.GetValue<int>(), vocabulary = tok?["fingerprint"]?.GetValue<string>(),
            });
        }
        return new ApiResult(200, new { models = list });
    }

    /// <summary>Imports an upload now (so that it can be picked, e.g. as a draft): {"model": "uploads/NAME", "tokenizer": null}.</summary>
    public async Task<ApiResult> ImportAsync(Stream body, CancellationToken ct = default)
    {
        ImportInput? input;
        try { input = await JsonSerializer.DeserializeAsync<ImportInput>(body, OptimizationRequest.Json, ct); }
        catch (JsonException e) { return ApiResult.Fail(400, "The body is not valid JSON", e.Message, new() { ["body"] = [e.Message] }); }
        if (string.IsNullOrEmpty(input?.Model)) return ApiResult.Fail(400, "Nothing to import", "send {\"model\": \"uploads/NAME\"}", new() { ["model"] = ["required"] });
        try
        {
            var a = await import.RunAsync(input);
            return new ApiResult(201, new { reference = $"{ArtifactRepository.ModelRefPrefix}{a.Key}", a.Key, a.Name, a.Dtype, a.Bytes, a.Reused });
        }
        catch (SioException e) { return ApiResult.Fail(400, "The model could not be imported", e.Message, new() { ["model"] = [e.Message] }); }
    }

    /// <summary>
    /// Checks a request without starting it: every field problem, and, when the target and a draft model are both
    /// imported, whether their vocabularies match (a draft must share the target's tokens).
    /// </summary>
    public async Task<ApiResult> ValidateAsync(Stream body, CancellationToken ct = default)
    {
        OptimizationRequest? request;
        try { request = await JsonSerializer.DeserializeAsync<OptimizationRequest>(body, OptimizationRequest.Json, ct); }
        catch (JsonException e) { return new ApiResult(200, new { valid = false, errors = new Dictionary<string, string[]> { ["body"] = [e.Message] } }); }
        if (request is null) return new ApiResult(200, new { valid = false, errors = new Dictionary<string, string[]> { ["body"] = ["empty"] } });
        var errors = request.Problems();
        if (!errors.ContainsKey("recipe") && Recipe.Parse(request.Recipe).OfType<SpeculativePass>().FirstOrDefault() is { Drafter: { Kind: DrafterKind.DraftModel } draft })
        {
            var draftKey = ArtifactRepository.ArtifactKey(draft.Path!);
            var targetKey = ArtifactRepository.ArtifactKey(request.Model);
            if (draftKey is not null && targetKey is not null && await Vocabulary(targetKey, ct) is { } t && await Vocabulary(draftKey, ct) is { } d && t != d)
                errors["recipe"] = [$"the draft model's vocabulary differs from the target's ({d.Size} tokens, fingerprint {d.Fingerprint[..12]} vs {t.Size} tokens, {t.Fingerprint[..12]}): a draft must propose the target's own tokens; pick a draft of the same family or use speculative:ngram"];
        }
        return new ApiResult(200, new { valid = errors.Count == 0, errors });
    }

    async Task<(int Size, string Fingerprint)?> Vocabulary(string key, CancellationToken ct)
    {
        var sio = await Store.GetTextAsync(Containers.Artifacts, $"{ArtifactRepository.ModelsPrefix}/{key}/{Models.ModelManifest.FileName}", ct);
        var tok = sio is null ? null : JsonNode.Parse(sio)?["tokenizer"];
        return tok is null ? null : (tok["vocab_size"]!.GetValue<int>(), tok["fingerprint"]!.GetValue<string>());
    }

    public static ApiResult Instances() => new(200, new { instances = Benchmarking.Pricing.Catalogue() });

    /// <summary>The live deployment and every published one as a card: variant, techniques, measured numbers, when it was live.</summary>
    public async Task<ApiResult> DeploymentsAsync(CancellationToken ct = default) => new(200, await DeploymentCatalog.ListAsync(Store, ct));

    public async Task<ApiResult> UploadsAsync(CancellationToken ct = default) =>
        new(200, new { uploads = (await Store.ListAsync(Containers.Uploads, "", ct)).Select(o => new { name = o.Name, size = o.Size, lastModified = o.LastModified }) });

    /// <summary>
    /// Stores an upload after checking it: a safe name, at most <see cref="PipelineOptions.MaxUploadBytes"/>, and content that
    /// is what its name says (a llama2.c checkpoint or tokenizer, a zip holding a model, a tokenizer file, or a dataset).
    /// </summary>
    public async Task<ApiResult> UploadAsync(string name, Stream body, long? contentLength, CancellationToken ct = default)
    {
        try { Containers.CheckName(name, "upload name"); }
        catch (SioException e) { return ApiResult.Fail(400, "Bad upload name", e.Message, new() { ["name"] = [e.Message] }); }
        long max = Options.MaxUploadBytes;
        if (contentLength > max) return ApiResult.Fail(413, "The upload is too large", $"{contentLength} bytes is over the {max}-byte limit");
        var temp = Path.Combine(Options.WorkDir, "incoming", $"{Guid.NewGuid():N}{Path.GetExtension(name)}");
        Directory.CreateDirectory(Path.GetDirectoryName(temp)!);
        try
        {
            long total = 0;
            await using (var file = File.Create(temp))
            {
                var buffer = new byte[1 << 16];
                int n;
                while ((n = await body.ReadAsync(buffer, ct)) > 0)
                {
                    total += n;
                    if (total > max) return ApiResult.Fail(413, "The upload is too large", $"the body is over the {max}-byte limit");
                    await file.WriteAsync(buffer.AsMemory(0, n), ct);
                }
            }
            if (total == 0) return ApiResult.Fail(400, "The upload is empty", $"{name} has no bytes", new() { ["body"] = ["empty"] });
            var problem = UploadContent.Problem(name, temp);
            if (problem is not null)
            {
                problem = problem.Replace(temp, name).Replace(Options.WorkDir, "…"); // name no server path
                return ApiResult.Fail(415, "The upload is not a model, tokenizer or dataset", problem, new() { ["body"] = [problem] });
            }
            await Store.UploadAsync(Containers.Uploads, name, temp, null, ct);
            var location = "/api/uploads/" + string.Join('/', name.Split('/').Select(Uri.EscapeDataString));
            return new ApiResult(201, new { name = $"{Containers.Uploads}/{name}", size = total }, location);
        }
        finally { if (File.Exists(temp)) File.Delete(temp); }
    }
}
