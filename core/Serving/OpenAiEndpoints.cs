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
    /// <summary>The largest request body the OpenAI routes read (a prompt longer than any context fits well inside it).</summary>
    public const long MaxBodyBytes = 4 << 20;

    /// <param name="load">Loads a local model folder for POST /admin/deployments; null when the host did not opt in to local paths (403).</param>
    public static void Map(WebApplication app, Deployments deployments, Func<string, Deployment>? load)
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
            if (load is null)
            {
                await Error(ctx, 403, "hot swaps by local folder are off: start the server with --allow-local-paths to enable POST /admin/deployments", "permission_error", "model");
                return;
            }
            string? dir;
            try { dir = (await ReadBody(ctx))["model"]?.GetValue<string>(); }
            catch (Exception e) when (e is JsonException or InvalidOperationException or BadRequest) { dir = null; }
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

    sealed class BadRequest(string message, string? param, int status = 400) : Exception(message)
    {
        public string? Param { get; } = param;
        public int Status { get; } = status;
    }

    /// <summary>Reads the body as a JSON object, refusing bodies over <see cref="MaxBodyBytes"/> (413) before reading them whole.</summary>
    static async Task<JsonObject> ReadBody(HttpContext ctx)
    {
        if (ctx.Request.ContentLength > MaxBodyBytes) throw new BadRequest($"the body is over {MaxBodyBytes >> 20} MiB", null, 413);
        using var buffer = new MemoryStream();
        var chunk = new byte[1 << 16];
        int n;
        while ((n = await ctx.Request.Body.ReadAsync(chunk, ctx.RequestAborted)) > 0)
        {
            if (buffer.Length + n > MaxBodyBytes) throw new BadRequest($"the body is over {MaxBodyBytes >> 20} MiB", null, 413);
            buffer.Write(chunk, 0, n);
        }
        buffer.Position = 0;
        return JsonNode.Parse(buffer) as JsonObject ?? throw new BadRequest("the body must be a JSON object", null);
    }

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
        try { body = await ReadBody(ctx); }
        catch (JsonException e) { await Error(ctx, 400, $"the body is not valid JSON: {e.Message}", "invalid_request_error", null); return; }
        catch (BadRequest e) { await Error(ctx, e.Status, e.Message, "invalid_request_error", e.Param); return; }
        catch (OperationCanceledException) { return; } // the client went away

        string prompt;
        GenerationOptions options;
        List<string> stops;
        bool stream;
        List<int> ids;
        try
        {
            prompt = chat ? ChatPrompt(body, deployment.ChatTemplate) : CompletionPrompt(body);
            if (IntField(body, "n") is int n && n != 1) throw new BadRequest("n must be 1", "n");
            int maxTokens = IntField(body, "max_tokens") ?? IntField(body, "max_completion_tokens") ?? (chat ? 256 : 16);
            if (maxTokens < 1) throw new BadRequest($"max_tokens must be ≥ 1, got {maxTokens}", "max_tokens");
            float temperature = FloatField(body, "temperature") ?? 1f;
            float topP = FloatField(body, "top_p") ?? 1f;
            if (temperature is < 0 or > 2) throw new BadRequest($"temperature must be in [0, 2], got {temperature}", "temperature");
            if (topP is <= 0 or > 1) throw new BadRequest($"top_p must be in (0, 1], got {topP}", "top_p");
            int? seed = IntField(body, "seed");
            stops = body["stop"] switch
            {
                null => [],
                JsonArray a => a.Select(s => s is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : throw new BadRequest("stop must be a string or a list of strings", "stop")).ToList(),
                JsonValue v when v.GetValueKind() == JsonValueKind.String => [v.GetValue<string>()],
                _ => throw new BadRequest("stop must be a string or a list of strings", "stop"),
            };
            stream = BoolField(body, "stream") ?? false;
            int context = engine.Model.Config.ContextLength;
            var tokenizer = engine.Model.Tokenizer;
            // A text longer than the context could ever hold is refused before it is tokenized.
            long bound = (long)context * tokenizer.MaxPieceChars + 1;
            if (prompt.Length > bound)
                throw new BadRequest($"the prompt has {prompt.Length} characters, more than the model's context of {context} tokens can hold", chat ? "messages" : "prompt");
            ids = chat ? deployment.ChatTemplate.Tokenize(tokenizer, prompt) : tokenizer.Encode(prompt);
            if (ids.Count >= context) throw new BadRequest($"the prompt has {ids.Count} tokens; the model's context is {context}", chat ? "messages" : "prompt");
            if (ids.Count + maxTokens > context)
                throw new BadRequest($"the prompt ({ids.Count} tokens) and max_tokens ({maxTokens}) exceed the model's context of {context}; ask for at most {context - ids.Count}", "max_tokens");
            options = new GenerationOptions
            {
                MaxTokens = maxTokens, Sampling = new SamplingOptions { Temperature = temperature, TopP = topP, Seed = seed },
                IgnoreModelStopTokens = BoolField(body, "ignore_eos") ?? false, // as vLLM's extension: fixed lengths for benchmarks
            };
        }
        catch (BadRequest e) { await Error(ctx, 400, e.Message, "invalid_request_error", e.Param); return; }
        catch (SioException e) { await Error(ctx, 400, e.Message, "invalid_request_error", null); return; }

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

    /// <summary>An optional integer field: null when absent or null, else its value, or a 400 naming the field.</summary>
    static int? IntField(JsonObject body, string name) =>
        Number(body, name, "an integer") is not { } d ? null
        : d == Math.Floor(d) && d is >= int.MinValue and <= int.MaxValue ? (int)d : throw new BadRequest($"{name} must be an integer, got {d}", name);

    static float? FloatField(JsonObject body, string name) =>
        Number(body, name, "a number") is not { } d ? null : float.IsFinite((float)d) ? (float)d : throw new BadRequest($"{name} must be a finite number", name);

    static bool? BoolField(JsonObject body, string name) => body[name] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValueKind() == JsonValueKind.True,
        JsonValue v when v.GetValueKind() == JsonValueKind.Null => null,
        _ => throw new BadRequest($"{name} must be true or false", name),
    };

    static double? Number(JsonObject body, string name, string need) => body[name] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.Number => v.GetValue<double>(),
        JsonValue v when v.GetValueKind() == JsonValueKind.Null => null,
        _ => throw new BadRequest($"{name} must be {need}", name),
    };

    static string CompletionPrompt(JsonObject body) => body["prompt"] switch
    {
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        JsonArray { Count: 1 } a when a[0] is JsonValue v1 && v1.GetValueKind() == JsonValueKind.String => v1.GetValue<string>(),
        null => throw new BadRequest("prompt is required", "prompt"),
        _ => throw new BadRequest("prompt must be a string (or a list of one string)", "prompt"),
    };

    /// <summary>
    /// The prompt of a chat request: its messages (content parts joined into one string) and tools, rendered by the
    /// model's chat template.
    /// </summary>
    static string ChatPrompt(JsonObject body, ChatTemplate template)
    {
        if (body["messages"] is not JsonArray { Count: > 0 } messages) throw new BadRequest("messages must be a non-empty list", "messages");
        var list = new JsonArray();
        foreach (var m in messages)
        {
            if (m is not JsonObject o || o["role"] is not JsonValue r || r.GetValueKind() != JsonValueKind.String)
                throw new BadRequest("every message needs a role (a string)", "messages");
            var message = (JsonObject)o.DeepClone();
            try { message["content"] = o["content"] is null && o["tool_calls"] is JsonArray ? null : ChatTemplate.ContentText(o["content"] ?? throw new SioException("messages: every message needs content (a string or a list of text parts)")); }
            catch (SioException e) { throw new BadRequest(e.Message, "messages"); }
            list.Add(message);
        }
        var tools = body["tools"] switch
        {
            null => null,
            JsonArray a => (JsonArray)a.DeepClone(),
            _ => throw new BadRequest("tools must be a list", "tools"),
        };
        try { return template.Render(list, addGenerationPrompt: true, tools); }
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
