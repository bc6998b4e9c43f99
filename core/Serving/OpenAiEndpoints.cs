using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Sio.Generation;

namespace Sio.Serving;

/// <summary>
/// The OpenAI-compatible endpoints over the current <see cref="Deployments"/>: /v1/completions and
/// /v1/chat/completions (with server-sent events when stream is true), /v1/models, /healthz, /readyz,
/// and POST /admin/deployments (hot swap to a model folder). Hosts (`sio serve`, `sio up`, the
/// inference Functions app) map them and add their own key check and metrics endpoint.
/// </summary>
public static class OpenAiEndpoints
{
    /// <summary>Checks a listening address: any address but loopback needs an API key (returned, from the option or SIO_API_KEY).</summary>
    public static string? RequireKeyOffLoopback(string host, int port, string? apiKey)
    {
        bool loopback = host is "127.0.0.1" or "localhost" or "::1" || (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip));
        var key = apiKey ?? Environment.GetEnvironmentVariable("SIO_API_KEY");
        if (!loopback && string.IsNullOrEmpty(key))
            throw new SioException($"--host {host} is not a loopback address: give --api-key (or SIO_API_KEY) so that every endpoint requires it");
        if (port is < 0 or > 65535) throw new SioException($"--port must be 0–65535, got {port}");
        return string.IsNullOrEmpty(key) ? null : key;
    }

    /// <summary>Answers 401 on every request without 'Authorization: Bearer KEY' (when a key is set).</summary>
    public static void UseApiKey(WebApplication app, string? key, Func<HttpContext, bool>? exempt = null)
    {
        if (string.IsNullOrEmpty(key)) return;
        app.Use(async (ctx, next) =>
        {
            if (exempt?.Invoke(ctx) != true && ctx.Request.Headers.Authorization.ToString() != $"Bearer {key}")
            {
                await Error(ctx, 401, "missing or wrong API key (Authorization: Bearer KEY)", "authentication_error", null);
                return;
            }
            await next();
        });
    }

    public static void Map(WebApplication app, Deployments deployments, Func<string, Deployment> load)
    {
        app.MapGet("/healthz", () => Results.Json(new { status = "ok" }));
        app.MapGet("/readyz", () => deployments.Current is { } d
            ? Results.Json(new { status = "ready", model = d.Id, active = d.Engine.Active, queued = d.Engine.Queued })
            : Results.Json(new { status = "no model deployed" }, statusCode: 503));
        app.MapGet("/v1/models", () => Results.Json(new
        {
            @object = "list",
            data = deployments.Current is { } d ? new[] { new { id = d.Id, @object = "model", created = d.Created, owned_by = "sio" } } : [],
        }));
        app.MapPost("/v1/completions", (HttpContext ctx) => Handle(ctx, deployments, chat: false));
        app.MapPost("/v1/chat/completions", (HttpContext ctx) => Handle(ctx, deployments, chat: true));
        app.MapPost("/admin/deployments", async (HttpContext ctx) =>
        {
            string? dir;
            try { dir = (await JsonNode.ParseAsync(ctx.Request.Body))?["model"]?.GetValue<string>(); }
            catch (Exception e) when (e is JsonException or InvalidOperationException) { dir = null; }
            if (string.IsNullOrEmpty(dir)) { await Error(ctx, 400, "the body must be {\"model\": \"MODEL FOLDER\"}", "invalid_request_error", "model"); return; }
            try
            {
                var d = deployments.Swap(load(dir));
                await ctx.Response.WriteAsJsonAsync(new { model = d.Id, folder = d.Folder });
            }
            catch (SioException e) { await Error(ctx, 400, e.Message, "invalid_request_error", "model"); }
            catch (Exception e) when (e is Microsoft.ML.OnnxRuntime.OnnxRuntimeException or IOException or UnauthorizedAccessException)
            {
                await Error(ctx, 500, $"loading {dir} failed: {e.Message}", "server_error", "model");
            }
        });
    }

    sealed class BadRequest(string message, string? param) : Exception(message) { public string? Param { get; } = param; }

    /// <summary>One completion or chat completion request against the current deployment.</summary>
    public static async Task Handle(HttpContext ctx, Deployments deployments, bool chat)
    {
        if (deployments.Enter() is not var (deployment, inFlight))
        {
            await Error(ctx, 503, "no model is deployed yet", "server_error", null);
            return;
        }
        using var _ = inFlight;
        var engine = deployment.Engine;
        string modelId = deployment.Id;
        JsonObject body;
        try { body = (await JsonNode.ParseAsync(ctx.Request.Body, cancellationToken: ctx.RequestAborted)) as JsonObject ?? throw new BadRequest("the body must be a JSON object", null); }
        catch (JsonException e) { await Error(ctx, 400, $"the body is not valid JSON: {e.Message}", "invalid_request_error", null); return; }
        catch (BadRequest e) { await Error(ctx, 400, e.Message, "invalid_request_error", e.Param); return; }

        string prompt;
        GenerationOptions options;
        List<string> stops;
        bool stream;
        List<int> ids;
        try
        {
            prompt = chat ? ChatPrompt(body, deployment.ChatTemplate) : CompletionPrompt(body);
            if (body["n"] is JsonNode n && n.GetValue<int>() != 1) throw new BadRequest("n must be 1", "n");
            int maxTokens = body["max_tokens"]?.GetValue<int>() ?? body["max_completion_tokens"]?.GetValue<int>() ?? (chat ? 256 : 16);
            if (maxTokens < 1) throw new BadRequest($"max_tokens must be ≥ 1, got {maxTokens}", "max_tokens");
            float temperature = body["temperature"]?.GetValue<float>() ?? 1f;
            float topP = body["top_p"]?.GetValue<float>() ?? 1f;
            if (temperature is < 0 or > 2) throw new BadRequest($"temperature must be in [0, 2], got {temperature}", "temperature");
            if (topP is <= 0 or > 1) throw new BadRequest($"top_p must be in (0, 1], got {topP}", "top_p");
            int? seed = body["seed"]?.GetValue<int>();
            stops = body["stop"] switch
            {
                null => [],
                JsonArray a => a.Select(s => s?.GetValue<string>() ?? throw new BadRequest("stop must be a string or a list of strings", "stop")).ToList(),
                JsonNode s => [s.GetValue<string>()],
            };
            stream = body["stream"]?.GetValue<bool>() ?? false;
            ids = chat && deployment.ChatTemplate.Kind != ChatTemplate.Family.Plain
                ? engine.Model.Tokenizer.EncodeWithSpecialTokens(prompt) // the template's markers are tokens
                : engine.Model.Tokenizer.Encode(prompt);
            int context = engine.Model.Config.ContextLength;
            if (ids.Count >= context) throw new BadRequest($"the prompt has {ids.Count} tokens; the model's context is {context}", chat ? "messages" : "prompt");
            if (ids.Count + maxTokens > context)
                throw new BadRequest($"the prompt ({ids.Count} tokens) and max_tokens ({maxTokens}) exceed the model's context of {context}; ask for at most {context - ids.Count}", "max_tokens");
            options = new GenerationOptions
            {
                MaxTokens = maxTokens, Sampling = new SamplingOptions { Temperature = temperature, TopP = topP, Seed = seed },
                IgnoreModelStopTokens = body["ignore_eos"]?.GetValue<bool>() ?? false, // as vLLM's extension: fixed lengths for benchmarks
            };
        }
        catch (BadRequest e) { await Error(ctx, 400, e.Message, "invalid_request_error", e.Param); return; }
        catch (Exception e) when (e is InvalidOperationException or FormatException or SioException) { await Error(ctx, 400, e.Message, "invalid_request_error", null); return; }

        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted);
        var job = new GenerationJob(ids, options, cancel.Token);
        if (!engine.TryEnqueue(job))
        {
            ctx.Response.Headers.RetryAfter = "1";
            await Error(ctx, 429, $"the server is at capacity ({engine.Options.MaxConcurrent} running, {engine.Options.QueueCapacity} queued); retry later", "rate_limit_error", null);
            return;
        }

        string id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N")[..24];
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var matcher = new StopMatcher(stops);
        var text = new System.Text.StringBuilder();
        if (stream)
        {
            ctx.Response.ContentType = "text/event-stream";
            ctx.Response.Headers.CacheControl = "no-cache";
            if (chat) await Sse(ctx, Chunk(id, created, modelId, chat, null, null, role: true));
        }
        try
        {
            await foreach (var piece in job.Pieces.Reader.ReadAllAsync(ctx.RequestAborted))
            {
                var safe = matcher.Feed(piece);
                if (safe.Length > 0)
                {
                    text.Append(safe);
                    if (stream) await Sse(ctx, Chunk(id, created, modelId, chat, safe, null));
                }
                if (matcher.Stopped) { cancel.Cancel(); break; }
            }
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
            cancel.Cancel();
            try { await job.Result.Task; } catch { } // the deployment stays in use until its engine lets go of the job
            return;
        }

        GenerationResult? result = null;
        try { result = await job.Result.Task; }
        catch (OperationCanceledException) when (matcher.Stopped) { }
        catch (OperationCanceledException) { return; } // the client went away
        catch (Exception e)
        {
            if (!stream) await Error(ctx, 500, $"generation failed: {e.Message}", "server_error", null);
            else await Sse(ctx, new JsonObject { ["error"] = new JsonObject { ["message"] = $"generation failed: {e.Message}", ["type"] = "server_error" } });
            return;
        }
        var tail = matcher.Flush();
        text.Append(tail);
        string finish = matcher.Stopped ? "stop" : result?.FinishReason ?? "stop";
        int completionTokens = result?.TokenIds.Count ?? engine.Model.Tokenizer.Encode(text.ToString(), addBos: false).Count;
        var usage = new { prompt_tokens = ids.Count, completion_tokens = completionTokens, total_tokens = ids.Count + completionTokens };
        // sio's extension: what speculative decoding did for this request (OpenAI clients ignore unknown fields).
        var sio = result?.Speculative is { Drafter: not "none" } sp
            ? new { speculative = new { drafter = sp.Drafter, proposed = sp.Proposed, accepted = sp.Accepted, acceptance_rate = sp.Proposed > 0 ? (double)sp.Accepted / sp.Proposed : 0, target_steps = sp.TargetSteps } }
            : null;
        if (stream)
        {
            if (tail.Length > 0) await Sse(ctx, Chunk(id, created, modelId, chat, tail, null));
            var last = Chunk(id, created, modelId, chat, null, finish);
            last["usage"] = JsonSerializer.SerializeToNode(usage);
            if (sio is not null) last["sio"] = JsonSerializer.SerializeToNode(sio);
            await Sse(ctx, last);
            await ctx.Response.WriteAsync("data: [DONE]\n\n");
            return;
        }
        object choice = chat
            ? new { index = 0, message = new { role = "assistant", content = text.ToString() }, finish_reason = finish, logprobs = (object?)null }
            : new { index = 0, text = text.ToString(), finish_reason = finish, logprobs = (object?)null };
        await ctx.Response.WriteAsJsonAsync(new
        {
            id, @object = chat ? "chat.completion" : "text_completion", created, model = modelId, choices = new[] { choice }, usage, sio,
        });
    }

    static string CompletionPrompt(JsonObject body) => body["prompt"] switch
    {
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        JsonArray { Count: 1 } a when a[0] is JsonValue v1 && v1.GetValueKind() == JsonValueKind.String => v1.GetValue<string>(),
        null => throw new BadRequest("prompt is required", "prompt"),
        _ => throw new BadRequest("prompt must be a string (or a list of one string)", "prompt"),
    };

    static string ChatPrompt(JsonObject body, ChatTemplate template)
    {
        if (body["messages"] is not JsonArray { Count: > 0 } messages) throw new BadRequest("messages must be a non-empty list", "messages");
        var list = new List<(string, string)>();
        foreach (var m in messages)
        {
            var role = m?["role"]?.GetValue<string>() ?? throw new BadRequest("every message needs a role", "messages");
            var content = m["content"] switch
            {
                JsonValue v => v.GetValue<string>(),
                JsonArray parts => string.Concat(parts.Select(p => p?["text"]?.GetValue<string>() ?? "")),
                _ => throw new BadRequest("every message needs content", "messages"),
            };
            list.Add((role, content));
        }
        try { return template.Render(list); }
        catch (SioException e) { throw new BadRequest(e.Message, "messages"); }
    }

    static JsonObject Chunk(string id, long created, string model, bool chat, string? text, string? finish, bool role = false)
    {
        JsonObject choice = chat
            ? new JsonObject { ["index"] = 0, ["delta"] = role ? new JsonObject { ["role"] = "assistant", ["content"] = "" } : text is null ? new JsonObject() : new JsonObject { ["content"] = text }, ["finish_reason"] = finish, ["logprobs"] = null }
            : new JsonObject { ["index"] = 0, ["text"] = text ?? "", ["finish_reason"] = finish, ["logprobs"] = null };
        return new JsonObject
        {
            ["id"] = id, ["object"] = chat ? "chat.completion.chunk" : "text_completion", ["created"] = created, ["model"] = model,
            ["choices"] = new JsonArray(choice),
        };
    }

    static async Task Sse(HttpContext ctx, JsonObject chunk)
    {
        await ctx.Response.WriteAsync($"data: {chunk.ToJsonString()}\n\n");
        await ctx.Response.Body.FlushAsync();
    }

    static Task Error(HttpContext ctx, int status, string message, string type, string? param)
    {
        ctx.Response.StatusCode = status;
        return ctx.Response.WriteAsJsonAsync(new { error = new { message, type, param, code = (string?)null } });
    }
}
