using System.Text.Json;
using System.Text.Json.Nodes;
using Sio.Generation;
using Sio.Serving;

namespace Sio.Hosting;

/// <summary>A 4xx answer to an OpenAI request, naming the field at fault.</summary>
sealed class BadRequest(string message, string? param, int status = 400) : Exception(message)
{
    public string? Param { get; } = param;
    public int Status { get; } = status;
    public ApiError Error => new(Status, Message, "invalid_request_error", Param);
}

/// <summary>A /v1/completions or /v1/chat/completions body, checked and tokenized against the deployment that will run it.</summary>
sealed record CompletionRequest(List<int> PromptIds, GenerationOptions Options, List<string> Stops, bool Stream)
{
    /// <summary>The largest request body the OpenAI routes read (a prompt longer than any context fits well inside it).</summary>
    public const long MaxBodyBytes = 4 << 20;

    public static CompletionRequest Parse(JsonObject body, Deployment deployment, bool chat)
    {
        var prompt = chat ? ChatPrompt(body, deployment.ChatTemplate) : CompletionPrompt(body);
        if (IntField(body, "n") is int n && n != 1) throw new BadRequest("n must be 1", "n");
        int maxTokens = IntField(body, "max_tokens") ?? IntField(body, "max_completion_tokens") ?? (chat ? 256 : 16);
        if (maxTokens < 1) throw new BadRequest($"max_tokens must be ≥ 1, got {maxTokens}", "max_tokens");
        float temperature = FloatField(body, "temperature") ?? 1f;
        float topP = FloatField(body, "top_p") ?? 1f;
        if (temperature is < 0 or > 2) throw new BadRequest($"temperature must be in [0, 2], got {temperature}", "temperature");
        if (topP is <= 0 or > 1) throw new BadRequest($"top_p must be in (0, 1], got {topP}", "top_p");
        var ids = Tokenize(prompt, deployment, chat, maxTokens);
        var options = new GenerationOptions
        {
            MaxTokens = maxTokens, Sampling = new SamplingOptions { Temperature = temperature, TopP = topP, Seed = IntField(body, "seed") },
            IgnoreModelStopTokens = BoolField(body, "ignore_eos") ?? false, // as vLLM's extension: fixed lengths for benchmarks
        };
        return new CompletionRequest(ids, options, StopStrings(body), BoolField(body, "stream") ?? false);
    }

    /// <summary>The prompt's ids, refused (before tokenizing, when the text alone is too long) unless prompt and max_tokens fit the context.</summary>
    static List<int> Tokenize(string prompt, Deployment deployment, bool chat, int maxTokens)
    {
        var model = deployment.Engine.Model;
        int context = model.Config.ContextLength;
        string field = chat ? "messages" : "prompt";
        long bound = (long)context * model.Tokenizer.MaxPieceChars + 1;
        if (prompt.Length > bound)
            throw new BadRequest($"the prompt has {prompt.Length} characters, more than the model's context of {context} tokens can hold", field);
        var ids = chat ? deployment.ChatTemplate.Tokenize(model.Tokenizer, prompt) : model.Tokenizer.Encode(prompt);
        if (ids.Count >= context) throw new BadRequest($"the prompt has {ids.Count} tokens; the model's context is {context}", field);
        if (ids.Count + maxTokens > context)
            throw new BadRequest($"the prompt ({ids.Count} tokens) and max_tokens ({maxTokens}) exceed the model's context of {context}; ask for at most {context - ids.Count}", "max_tokens");
        return ids;
    }

    static List<string> StopStrings(JsonObject body) => body["stop"] switch
    {
        null => [],
        JsonArray a => [.. a.Select(s => s is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : throw new BadRequest("stop must be a string or a list of strings", "stop"))],
        JsonValue v when v.GetValueKind() == JsonValueKind.String => [v.GetValue<string>()],
        _ => throw new BadRequest("stop must be a string or a list of strings", "stop"),
    };

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

    /// <summary>The prompt of a chat request: its messages (content parts joined into one string) and tools, rendered by the model's chat template.</summary>
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
}
