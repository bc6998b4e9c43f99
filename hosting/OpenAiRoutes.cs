using System.Diagnostics;
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

        using var span = ServingTraces.Request(chat ? "chat" : "text_completion", deployment.Id, request.Options, request.PromptIds.Count, request.N, CallerTrace(ctx));
        // one job per choice (n), each with its own cancellation
        var cancels = Enumerable.Range(0, request.N).Select(_ => CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted)).ToList();
        try
        {
            var jobs = cancels.Select((c, i) => new GenerationJob(request.PromptIds, ChoiceOptions(request, i), c.Token)).ToList();
            var engine = deployment.Engine;
            for (int i = 0; i < jobs.Count; i++)
            {
                if (engine.TryEnqueue(jobs[i])) continue;
                foreach (var c in cancels) c.Cancel(); // the choices already queued end at once
                foreach (var queued in jobs.Take(i)) try { await queued.Result.Task; } catch { }
                ctx.Response.Headers.RetryAfter = "1";
                span?.SetStatus(ActivityStatusCode.Error, "at capacity");
                await new ApiError(429, $"the server is at capacity ({engine.Options.MaxConcurrent} running, {engine.Options.QueueCapacity} queued); retry later", "rate_limit_error").Write(ctx);
                return;
            }
            using var response = new CompletionResponse(ctx, deployment, chat, request);
            await response.RunAsync(jobs, cancels);
        }
        finally { foreach (var c in cancels) c.Dispose(); }
    }

    /// <summary>The caller's W3C trace context (traceparent and tracestate headers), so that sio's spans join the caller's trace.</summary>
    static ActivityContext CallerTrace(HttpContext ctx) =>
        ActivityContext.TryParse(ctx.Request.Headers["traceparent"], ctx.Request.Headers["tracestate"], out var parent) ? parent : default;

    /// <summary>Choice i of n: with a seed, seed + i, so that the choices differ and each is reproducible.</summary>
    static GenerationOptions ChoiceOptions(CompletionRequest request, int i) =>
        i == 0 || request.Options.Sampling.Seed is not int seed ? request.Options
        : request.Options with { Sampling = request.Options.Sampling with { Seed = unchecked(seed + i) } };

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
