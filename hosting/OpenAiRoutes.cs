using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Sio.Generation;
using Sio.Serving;

namespace Sio.Hosting;

/// <summary>
/// The OpenAI-compatible routes over the host's current <see cref="Deployments"/>: /v1/completions and
/// /v1/chat/completions (server-sent events when stream is true), /v1/models, and the probes /healthz and /readyz.
/// </summary>
sealed class OpenAiRoutes(HostServices host)
{
    ApiError NotServing => ApiError.NotOnThisHost(host.Name, "serve models", "send OpenAI requests to `sio serve`, `sio up` or the inference Function App");

    public static Task Health(HttpContext c) => c.Response.WriteAsJsonAsync(new { status = "ok" });

    public Task Ready(HttpContext c)
    {
        if (host.Deployments?.Current is not { } d)
        {
            c.Response.StatusCode = 503;
            return c.Response.WriteAsJsonAsync(new { status = host.Deployments is null ? $"{host.Name} serves no model" : "no model deployed" });
        }
        return c.Response.WriteAsJsonAsync(new { status = "ready", model = d.Id, active = d.Engine.Active, queued = d.Engine.Queued });
    }

    public Task Models(HttpContext c)
    {
        if (host.Deployments is not { } deployments) return NotServing.Write(c);
        return c.Response.WriteAsJsonAsync(new
        {
            @object = "list",
            data = deployments.Current is { } d ? new[] { new { id = d.Id, @object = "model", created = d.Created, owned_by = "sio" } } : [],
        });
    }

    /// <summary>GET /v1/models/{id}: the served model, or 404 model_not_found.</summary>
    public Task Model(HttpContext c)
    {
        if (host.Deployments is not { } deployments) return NotServing.Write(c);
        var id = (string)c.Request.RouteValues["id"]!;
        if (deployments.Current is { } d && d.Id == id) return c.Response.WriteAsJsonAsync(new { id = d.Id, @object = "model", created = d.Created, owned_by = "sio" });
        return new ApiError(404, $"The model '{id}' does not exist{(deployments.Current is { } cur ? $": this server serves '{cur.Id}'" : ": no model is deployed")}",
            "invalid_request_error", "model", "model_not_found").Write(c);
    }

    /// <summary>One completion or chat completion request against the current deployment.</summary>
    public async Task Complete(HttpContext ctx, bool chat)
    {
        if (host.Deployments is not { } deployments) { await NotServing.Write(ctx); return; }
        if (deployments.Enter() is not var (deployment, inFlight))
        {
            await new ApiError(503, "no model is deployed yet", "server_error").Write(ctx);
            return;
        }
        using var _ = inFlight;
        CompletionRequest request;
        try { request = CompletionRequest.Parse(await ReadBody(ctx), deployment, chat); }
        catch (JsonException e) { await new ApiError(400, $"the body is not valid JSON: {e.Message}", "invalid_request_error").Write(ctx); return; }
        catch (BadRequest e) { await e.Error.Write(ctx); return; }
        catch (SioException e) { await new ApiError(400, e.Message, "invalid_request_error").Write(ctx); return; }
        catch (OperationCanceledException) { return; } // the client went away

        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted);
        var job = new GenerationJob(request.PromptIds, request.Options, cancel.Token);
        var engine = deployment.Engine;
        if (!engine.TryEnqueue(job))
        {
            ctx.Response.Headers.RetryAfter = "1";
            await new ApiError(429, $"the server is at capacity ({engine.Options.MaxConcurrent} running, {engine.Options.QueueCapacity} queued); retry later", "rate_limit_error").Write(ctx);
            return;
        }
        await new CompletionResponse(ctx, deployment, chat, request).RunAsync(job, cancel);
    }

    /// <summary>Reads the body as a JSON object, refusing bodies over <see cref="CompletionRequest.MaxBodyBytes"/> (413) before reading them whole.</summary>
    static async Task<JsonObject> ReadBody(HttpContext ctx)
    {
        const long max = CompletionRequest.MaxBodyBytes;
        if (ctx.Request.ContentLength > max) throw new BadRequest($"the body is over {max >> 20} MiB", null, 413);
        using var buffer = new MemoryStream();
        var chunk = new byte[1 << 16];
        int n;
        while ((n = await ctx.Request.Body.ReadAsync(chunk, ctx.RequestAborted)) > 0)
        {
            if (buffer.Length + n > max) throw new BadRequest($"the body is over {max >> 20} MiB", null, 413);
            buffer.Write(chunk, 0, n);
        }
        buffer.Position = 0;
        return JsonNode.Parse(buffer) as JsonObject ?? throw new BadRequest("the body must be a JSON object", null);
    }
}

/// <summary>Writes one generation job's answer: OpenAI's JSON object, or its server-sent events chunk by chunk, cut at the first stop string.</summary>
sealed class CompletionResponse(HttpContext ctx, Deployment deployment, bool chat, CompletionRequest request)
{
    readonly string _id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N")[..24];
    readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    readonly StopMatcher _matcher = new(request.Stops);
    readonly StringBuilder _text = new();
    readonly List<TokenLogprob> _logprobs = new();
    int _logprobsSent;
    Tokenization.Tokenizer Tokenizer => deployment.Engine.Model.Tokenizer;

    public async Task RunAsync(GenerationJob job, CancellationTokenSource cancel)
    {
        if (request.Stream)
        {
            ctx.Response.ContentType = "text/event-stream";
            ctx.Response.Headers.CacheControl = "no-cache";
            if (chat) await Sse(Chunk(null, null, role: true));
        }
        try
        {
            await foreach (var piece in job.Pieces.Reader.ReadAllAsync(ctx.RequestAborted))
            {
                var safe = _matcher.Feed(piece);
                while (job.Logprobs?.Reader.TryRead(out var lp) == true) _logprobs.Add(lp);
                if (safe.Length > 0)
                {
                    _text.Append(safe);
                    if (request.Stream) await Sse(Chunk(safe, null, logprobs: NewLogprobs()));
                }
                if (_matcher.Stopped) { cancel.Cancel(); break; }
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
        catch (OperationCanceledException) when (_matcher.Stopped) { }
        catch (OperationCanceledException) { return; } // the client went away
        catch (Exception e)
        {
            if (!request.Stream) await new ApiError(500, $"generation failed: {e.Message}", "server_error").Write(ctx);
            else await Sse(new JsonObject { ["error"] = new JsonObject { ["message"] = $"generation failed: {e.Message}", ["type"] = "server_error" } });
            return;
        }
        await FinishAsync(job, result);
    }

    async Task FinishAsync(GenerationJob job, GenerationResult? result)
    {
        var tail = _matcher.Flush();
        _text.Append(tail);
        while (job.Logprobs?.Reader.TryRead(out var lp) == true) _logprobs.Add(lp);
        string finish = _matcher.Stopped ? "stop" : result?.FinishReason ?? "stop";
        int promptTokens = request.PromptIds.Count;
        int completionTokens = result?.TokenIds.Count ?? deployment.Engine.Model.Tokenizer.Encode(_text.ToString(), addBos: false).Count;
        var usage = new { prompt_tokens = promptTokens, completion_tokens = completionTokens, total_tokens = promptTokens + completionTokens };
        // sio's extension: what speculative decoding did for this request (OpenAI clients ignore unknown fields).
        var sio = result?.Speculative is { Drafter: not "none" } sp
            ? new { speculative = new { drafter = sp.Drafter, proposed = sp.Proposed, accepted = sp.Accepted, acceptance_rate = sp.Proposed > 0 ? (double)sp.Accepted / sp.Proposed : 0, target_steps = sp.TargetSteps } }
            : null;
        if (request.Stream)
        {
            if (tail.Length > 0 || _logprobsSent < _logprobs.Count) await Sse(Chunk(tail, null, logprobs: NewLogprobs()));
            var last = Chunk(null, finish);
            last["usage"] = JsonSerializer.SerializeToNode(usage);
            if (sio is not null) last["sio"] = JsonSerializer.SerializeToNode(sio);
            await Sse(last);
            if (request.IncludeUsage) // OpenAI's stream_options.include_usage: one more chunk, no choices, the usage
            {
                var usageChunk = Chunk(null, null);
                usageChunk["choices"] = new JsonArray();
                usageChunk["usage"] = JsonSerializer.SerializeToNode(usage);
                await Sse(usageChunk);
            }
            await ctx.Response.WriteAsync("data: [DONE]\n\n");
            return;
        }
        var logprobs = request.Options.Sampling.Logprobs is null ? null : Logprobs(_logprobs, 0);
        object choice = chat
            ? new { index = 0, message = new { role = "assistant", content = _text.ToString() }, finish_reason = finish, logprobs }
            : new { index = 0, text = _text.ToString(), finish_reason = finish, logprobs };
        await ctx.Response.WriteAsJsonAsync(new
        {
            id = _id, @object = chat ? "chat.completion" : "text_completion", created = _created, model = deployment.Id, choices = new[] { choice }, usage, sio,
        });
    }

    /// <summary>The logprobs not sent yet (streaming: each chunk carries those of the tokens that arrived with its text).</summary>
    JsonNode? NewLogprobs()
    {
        if (request.Options.Sampling.Logprobs is null) return null;
        var node = Logprobs(_logprobs.Skip(_logprobsSent).ToList(), _text.Length);
        _logprobsSent = _logprobs.Count;
        return node;
    }

    /// <summary>OpenAI's logprobs object: chat's {content: [{token, logprob, bytes, top_logprobs}]}, completions' parallel lists.</summary>
    JsonNode Logprobs(IReadOnlyList<TokenLogprob> tokens, int textOffset)
    {
        string Text(int id) => Tokenizer.PieceText(id);
        JsonArray Bytes(int id) => new([.. Encoding.UTF8.GetBytes(Text(id)).Select(b => (JsonNode)JsonValue.Create((int)b))]);
        if (chat)
            return new JsonObject
            {
                ["content"] = new JsonArray([.. tokens.Select(t => (JsonNode)new JsonObject
                {
                    ["token"] = Text(t.Token), ["logprob"] = t.Logprob, ["bytes"] = Bytes(t.Token),
                    ["top_logprobs"] = new JsonArray([.. t.Top.Select(a => (JsonNode)new JsonObject { ["token"] = Text(a.Token), ["logprob"] = a.Logprob, ["bytes"] = Bytes(a.Token) })]),
                })]),
                ["refusal"] = null,
            };
        var offsets = new JsonArray();
        int offset = textOffset;
        foreach (var t in tokens) { offsets.Add(offset); offset += Text(t.Token).Length; }
        return new JsonObject
        {
            ["tokens"] = new JsonArray([.. tokens.Select(t => (JsonNode)JsonValue.Create(Text(t.Token)))]),
            ["token_logprobs"] = new JsonArray([.. tokens.Select(t => (JsonNode)JsonValue.Create(t.Logprob))]),
            ["top_logprobs"] = new JsonArray([.. tokens.Select(t =>
            {
                var top = new JsonObject();
                foreach (var a in t.Top) top.TryAdd(Text(a.Token), a.Logprob); // same text twice: the likelier (first) one stands
                return (JsonNode)top;
            })]),
            ["text_offset"] = offsets,
        };
    }

    JsonObject Chunk(string? text, string? finish, bool role = false, JsonNode? logprobs = null)
    {
        JsonObject choice = chat
            ? new JsonObject { ["index"] = 0, ["delta"] = role ? new JsonObject { ["role"] = "assistant", ["content"] = "" } : text is null ? new JsonObject() : new JsonObject { ["content"] = text }, ["finish_reason"] = finish, ["logprobs"] = logprobs }
            : new JsonObject { ["index"] = 0, ["text"] = text ?? "", ["finish_reason"] = finish, ["logprobs"] = logprobs };
        return new JsonObject
        {
            ["id"] = _id, ["object"] = chat ? "chat.completion.chunk" : "text_completion", ["created"] = _created, ["model"] = deployment.Id,
            ["choices"] = new JsonArray(choice),
        };
    }

    async Task Sse(JsonObject chunk)
    {
        await ctx.Response.WriteAsync($"data: {chunk.ToJsonString()}\n\n");
        await ctx.Response.Body.FlushAsync();
    }
}
