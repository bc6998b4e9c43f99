using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Sio.Generation;
using Sio.Serving;

namespace Sio.Hosting;

/// <summary>
/// Writes the answer to one OpenAI request, one generation job per choice (n): OpenAI's JSON object, or its server-sent
/// events chunk by chunk (each carrying its choice's index), each choice cut at its first stop string, and — when tools
/// were offered — read back into tool_calls.
/// </summary>
sealed class CompletionResponse(HttpContext ctx, Deployment deployment, bool chat, CompletionRequest request) : IDisposable
{
    readonly string _id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N")[..24];
    readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    readonly SemaphoreSlim _write = new(1, 1);
    Tokenization.Tokenizer Tokenizer => deployment.Engine.Model.Tokenizer;

    public async Task RunAsync(IReadOnlyList<GenerationJob> jobs, IReadOnlyList<CancellationTokenSource> cancels)
    {
        if (request.Stream)
        {
            ctx.Response.ContentType = "text/event-stream";
            ctx.Response.Headers.CacheControl = "no-cache";
            if (chat) for (int i = 0; i < jobs.Count; i++) await Sse(Chunk(i, new JsonObject { ["role"] = "assistant", ["content"] = "" }, null));
        }
        var choices = jobs.Select((job, i) => new CompletionChoice(i, job, cancels[i], request)).ToList();
        await Task.WhenAll(choices.Select(c => c.ReadAsync(request.Stream ? SendPieceAsync : null, ctx.RequestAborted)));
        if (choices.Any(c => c.ClientGone)) return; // the client went away: nothing to answer
        if (choices.FirstOrDefault(c => c.Error is not null) is { } failed)
        {
            var message = $"generation failed: {failed.Error!.Message}";
            System.Diagnostics.Activity.Current?.SetStatus(System.Diagnostics.ActivityStatusCode.Error, message);
            if (!request.Stream) await new ApiError(500, message, "server_error").Write(ctx);
            else await Sse(new JsonObject { ["error"] = new JsonObject { ["message"] = message, ["type"] = "server_error" } });
            return;
        }
        foreach (var c in choices) c.Finish(Tokenizer);
        ServingTraces.Answered(System.Diagnostics.Activity.Current, _id, deployment.Id, [.. choices.Select(c => c.FinishReason)], choices.Sum(c => c.CompletionTokens));
        if (request.Stream) await FinishStreamAsync(choices);
        else await WriteAnswerAsync(choices);
    }

    Task SendPieceAsync(CompletionChoice choice, string text, IReadOnlyList<TokenLogprob> logprobs, int offset) =>
        Sse(Chunk(choice.Index, chat ? new JsonObject { ["content"] = text } : null, null, text, Logprobs(logprobs, offset)));

    async Task FinishStreamAsync(List<CompletionChoice> choices)
    {
        foreach (var c in choices)
        {
            var unsent = c.UnsentLogprobs();
            if (c.Calls.Count > 0)
                await Sse(Chunk(c.Index, new JsonObject { ["content"] = c.Content, ["tool_calls"] = ToolCallsJson(c, streamed: true) }, null, logprobs: Logprobs(unsent, c.SentTextLength)));
            else if (c.Unsent.Length > 0 || unsent.Count > 0)
                await SendPieceAsync(c, c.Unsent, unsent, c.SentTextLength);
            var last = Chunk(c.Index, chat ? new JsonObject() : null, c.FinishReason);
            if (c.Index == choices.Count - 1)
            {
                last["usage"] = Usage(choices);
                if (Speculation(choices) is { } sio) last["sio"] = sio;
            }
            await Sse(last);
        }
        if (request.IncludeUsage) // OpenAI's stream_options.include_usage: one more chunk, no choices, the usage
        {
            var usageChunk = Chunk(0, null, null);
            usageChunk["choices"] = new JsonArray();
            usageChunk["usage"] = Usage(choices);
            await Sse(usageChunk);
        }
        await ctx.Response.WriteAsync("data: [DONE]\n\n");
    }

    async Task WriteAnswerAsync(List<CompletionChoice> choices)
    {
        var list = new JsonArray();
        foreach (var c in choices)
        {
            var logprobs = request.Options.Sampling.Logprobs is null ? null : Logprobs(c.AllLogprobs, 0);
            var message = new JsonObject { ["role"] = "assistant", ["content"] = c.Content };
            if (c.Calls.Count > 0) message["tool_calls"] = ToolCallsJson(c, streamed: false);
            list.Add(chat
                ? new JsonObject { ["index"] = c.Index, ["message"] = message, ["finish_reason"] = c.FinishReason, ["logprobs"] = logprobs }
                : new JsonObject { ["index"] = c.Index, ["text"] = c.Content, ["finish_reason"] = c.FinishReason, ["logprobs"] = logprobs });
        }
        var answer = new JsonObject
        {
            ["id"] = _id, ["object"] = chat ? "chat.completion" : "text_completion", ["created"] = _created, ["model"] = deployment.Id,
            ["choices"] = list, ["usage"] = Usage(choices),
        };
        if (Speculation(choices) is { } sio) answer["sio"] = sio;
        await ctx.Response.WriteAsJsonAsync(answer);
    }

    JsonArray ToolCallsJson(CompletionChoice c, bool streamed) => new([.. c.Calls.Select((call, i) =>
    {
        var json = new JsonObject
        {
            ["id"] = $"call_{_id[^8..]}{c.Index}{i}", ["type"] = "function",
            ["function"] = new JsonObject { ["name"] = call.Name, ["arguments"] = call.Arguments },
        };
        if (streamed) json["index"] = i;
        return (JsonNode)json;
    })]);

    JsonNode Usage(List<CompletionChoice> choices)
    {
        int prompt = request.PromptIds.Count, completion = choices.Sum(c => c.CompletionTokens);
        return new JsonObject { ["prompt_tokens"] = prompt, ["completion_tokens"] = completion, ["total_tokens"] = prompt + completion };
    }

    /// <summary>sio's extension: what speculative decoding did for this request (OpenAI clients ignore unknown fields).</summary>
    static JsonNode? Speculation(List<CompletionChoice> choices)
    {
        var runs = choices.Select(c => c.Result?.Speculative).OfType<Speculative.SpeculativeStats>().Where(sp => sp.Drafter != "none").ToList();
        if (runs.Count == 0) return null;
        long proposed = runs.Sum(r => (long)r.Proposed), accepted = runs.Sum(r => (long)r.Accepted);
        return new JsonObject
        {
            ["speculative"] = new JsonObject
            {
                ["drafter"] = runs[0].Drafter, ["proposed"] = proposed, ["accepted"] = accepted,
                ["acceptance_rate"] = proposed > 0 ? (double)accepted / proposed : 0, ["target_steps"] = runs.Sum(r => r.TargetSteps),
            },
        };
    }

    /// <summary>OpenAI's logprobs object: chat's {content: [{token, logprob, bytes, top_logprobs}]}, completions' parallel lists.</summary>
    JsonNode? Logprobs(IReadOnlyList<TokenLogprob> tokens, int textOffset)
    {
        if (request.Options.Sampling.Logprobs is null) return null;
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

    JsonObject Chunk(int index, JsonObject? delta, string? finish, string? text = null, JsonNode? logprobs = null)
    {
        JsonObject choice = chat
            ? new JsonObject { ["index"] = index, ["delta"] = delta ?? new JsonObject(), ["finish_reason"] = finish, ["logprobs"] = logprobs }
            : new JsonObject { ["index"] = index, ["text"] = text ?? "", ["finish_reason"] = finish, ["logprobs"] = logprobs };
        return new JsonObject
        {
            ["id"] = _id, ["object"] = chat ? "chat.completion.chunk" : "text_completion", ["created"] = _created, ["model"] = deployment.Id,
            ["choices"] = new JsonArray(choice),
        };
    }

    public void Dispose() => _write.Dispose();

    async Task Sse(JsonObject chunk)
    {
        await _write.WaitAsync();
        try
        {
            await ctx.Response.WriteAsync($"data: {chunk.ToJsonString()}\n\n");
            await ctx.Response.Body.FlushAsync();
        }
        finally { _write.Release(); }
    }
}
