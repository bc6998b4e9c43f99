using System.Text.Json;
using System.Text.Json.Nodes;
using Sio.Generation;
using Sio.Serving;

namespace Sio.Hosting;

/// <summary>A 4xx answer to an OpenAI request, naming the field at fault.</summary>
sealed class BadRequest(string message, string? param, int status = 400, string? code = null) : Exception(message)
{
    public string? Param { get; } = param;
    public int Status { get; } = status;
    public ApiError Error => new(Status, Message, "invalid_request_error", Param, code);
}

/// <summary>A /v1/completions or /v1/chat/completions body, checked and tokenized against the deployment that will run it.</summary>
sealed record CompletionRequest(List<int> PromptIds, GenerationOptions Options, bool Stream, bool IncludeUsage = false, int N = 1)
{
    /// <summary>The functions offered to the model (tools with tool_choice other than "none"): its answer is read back into tool_calls.</summary>
    public ToolChoice? Tools { get; init; }

    /// <summary>The largest request body the OpenAI routes read (a prompt longer than any context fits well inside it).</summary>
    public const long MaxBodyBytes = 4 << 20;

    /// <summary>Every field sio reads; any other is refused by name rather than ignored.</summary>
    static readonly HashSet<string> Common = ["model", "max_tokens", "temperature", "top_p", "n", "seed", "stop", "stream", "stream_options", "user",
        "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_k", "repetition_penalty", "ignore_eos"];
    static readonly HashSet<string> ChatOnly = ["messages", "max_completion_tokens", "top_logprobs", "tools", "tool_choice", "parallel_tool_calls", "response_format"];
    static readonly HashSet<string> CompletionOnly = ["prompt", "echo", "best_of", "suffix"];

    public static CompletionRequest Parse(JsonObject body, Deployment deployment, bool chat)
    {
        foreach (var (name, _) in body)
            if (!Common.Contains(name) && !(chat ? ChatOnly : CompletionOnly).Contains(name))
                throw new BadRequest($"sio does not implement '{name}'{(ChatOnly.Contains(name) || CompletionOnly.Contains(name) ? $" on {(chat ? "/v1/chat/completions" : "/v1/completions")}" : "")}", name);
        CheckModel(body, deployment);
        CheckUnimplementedValues(body, chat);
        var prompt = chat ? ChatPrompt(body, deployment.ChatTemplate) : CompletionPrompt(body);
        int n = IntField(body, "n") ?? 1;
        if (n is < 1 or > MaxChoices) throw new BadRequest($"n must be from 1 to {MaxChoices}, got {n}", "n");
        var tools = chat ? ToolChoice.Parse(body, deployment.ChatTemplate.ToolCalls) : null;
        int maxTokens = IntField(body, "max_completion_tokens") ?? IntField(body, "max_tokens") ?? (chat ? 256 : 16);
        if (maxTokens < 1) throw new BadRequest($"max_tokens must be ≥ 1, got {maxTokens}", body.ContainsKey("max_completion_tokens") ? "max_completion_tokens" : "max_tokens");
        float temperature = FloatField(body, "temperature") ?? 1f;
        float topP = FloatField(body, "top_p") ?? 1f;
        if (temperature is < 0 or > 2) throw new BadRequest($"temperature must be in [0, 2], got {temperature}", "temperature");
        if (topP is <= 0 or > 1) throw new BadRequest($"top_p must be in (0, 1], got {topP}", "top_p");
        var sampling = Sampling(body, chat, deployment) with { Temperature = temperature, TopP = topP, Json = Grammar(body, tools) };
        try { sampling.Validate(); }
        catch (SioException e) { throw new BadRequest(e.Message, e.Message.Split(' ')[0].Replace('-', '_')); }
        if (sampling.Json is { } grammar && maxTokens < grammar.MinTokens)
            throw new BadRequest($"max_tokens {maxTokens} is too few for {grammar.Name}: at least {grammar.MinTokens}, a token for each byte it may take", body.ContainsKey("max_completion_tokens") ? "max_completion_tokens" : "max_tokens");
        var ids = Tokenize(prompt, deployment, chat, maxTokens);
        var options = new GenerationOptions
        {
            MaxTokens = maxTokens, Sampling = sampling,
            IgnoreModelStopTokens = BoolField(body, "ignore_eos") ?? false, // as vLLM's extension: fixed lengths for benchmarks
            StopStrings = StopStrings(body),
        };
        bool stream = BoolField(body, "stream") ?? false;
        bool includeUsage = body["stream_options"] switch
        {
            null => false,
            JsonObject o when stream => o.Where(p => p.Key != "include_usage").Select(p => p.Key).FirstOrDefault() is { } other
                ? throw new BadRequest($"sio does not implement stream_options.{other}", "stream_options")
                : BoolField(o, "include_usage") ?? false,
            JsonObject => throw new BadRequest("stream_options is only allowed when stream is true", "stream_options"),
            _ => throw new BadRequest("stream_options must be an object", "stream_options"),
        };
        return new CompletionRequest(ids, options, stream, includeUsage, n) { Tools = tools?.Offered == true ? tools : null };
    }

    /// <summary>The most choices one request may ask for (n).</summary>
    public const int MaxChoices = 8;

    /// <summary>What constrains the answer: response_format json_object or json_schema, or a forced tool call; refusing both at once.</summary>
    static JsonGrammar? Grammar(JsonObject body, ToolChoice? tools)
    {
        JsonGrammar? format = null;
        try
        {
            format = body["response_format"] is JsonNode rf ? ResponseFormat(rf) : null;
            var call = tools?.Forced == true ? tools.Format.Grammar(tools.Functions) : null;
            if (format is not null && call is not null) throw new BadRequest("response_format and a forced tool call (tool_choice) cannot both shape the answer; drop one", "response_format");
            return format ?? call;
        }
        catch (SioException e) { throw new BadRequest(e.Message, format is null && body.ContainsKey("response_format") ? "response_format" : "tools"); }
    }

    /// <summary>OpenAI's response_format: text, json_object, or json_schema {name, schema, strict}.</summary>
    static JsonGrammar? ResponseFormat(JsonNode node)
    {
        var type = node is JsonObject o && o["type"] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>()
            : throw new BadRequest("response_format must be an object with a type", "response_format");
        switch (type)
        {
            case "text" or "json_object":
                if (o.Count > 1) throw new BadRequest($"response_format {type} takes no other field than type", "response_format");
                return type == "text" ? null : JsonGrammar.AnyObject;
            case "json_schema":
                if (o.Any(p => p.Key is not ("type" or "json_schema"))) throw new BadRequest("response_format json_schema takes type and json_schema", "response_format");
                if (o["json_schema"] is not JsonObject js || js["schema"] is not JsonObject schema)
                    throw new BadRequest("response_format json_schema needs json_schema.schema (an object)", "response_format");
                if (js.Any(p => p.Key is not ("name" or "schema" or "strict" or "description")))
                    throw new BadRequest($"sio does not implement response_format.json_schema.{js.First(p => p.Key is not ("name" or "schema" or "strict" or "description")).Key}", "response_format");
                var name = js["name"] is JsonValue nv && nv.TryGetValue<string>(out var n) ? n : "response";
                try { return JsonGrammar.FromSchema(schema, $"the schema '{name}'"); }
                catch (SioException e) { throw new BadRequest($"response_format.json_schema.{e.Message}", "response_format"); }
            default: throw new BadRequest($"response_format type '{type}' is not one of text, json_object, json_schema", "response_format");
        }
    }

    /// <summary>An OpenAI client names a model; one that is not the deployment is 404 model_not_found, as OpenAI answers.</summary>
    static void CheckModel(JsonObject body, Deployment deployment)
    {
        if (body["model"] is null || body["model"] is JsonValue nv && nv.GetValueKind() == JsonValueKind.Null) return;
        if (body["model"] is not JsonValue v || v.GetValueKind() != JsonValueKind.String) throw new BadRequest("model must be a string", "model");
        var model = v.GetValue<string>();
        if (model != deployment.Id)
            throw new BadRequest($"The model '{model}' does not exist: this server serves '{deployment.Id}' (GET /v1/models)", "model", 404, "model_not_found");
    }

    /// <summary>Values of known fields that ask for something sio does not do yet: refused, never ignored.</summary>
    static void CheckUnimplementedValues(JsonObject body, bool chat)
    {
        if (!chat && BoolField(body, "echo") == true) throw new BadRequest("sio does not implement echo", "echo");
        if (!chat && IntField(body, "best_of") is int b && b != 1) throw new BadRequest("best_of must be 1", "best_of");
        if (!chat && body["suffix"] is JsonValue sv && sv.GetValueKind() == JsonValueKind.String && sv.GetValue<string>().Length > 0)
            throw new BadRequest("sio does not implement suffix (insertion)", "suffix");
        if (chat && IntField(body, "top_logprobs") is not null && BoolField(body, "logprobs") != true)
            throw new BadRequest("top_logprobs needs logprobs: true", "top_logprobs");
    }

    /// <summary>Penalties, logit_bias, top_k, seed and logprobs (chat: logprobs true + top_logprobs; completions: logprobs N).</summary>
    static SamplingOptions Sampling(JsonObject body, bool chat, Deployment deployment)
    {
        int? logprobs = chat
            ? BoolField(body, "logprobs") == true ? IntField(body, "top_logprobs") ?? 0 : null
            : IntField(body, "logprobs") is int k ? k is >= 0 and <= 5 ? k : throw new BadRequest($"logprobs must be from 0 to 5, got {k}", "logprobs") : null;
        return new SamplingOptions
        {
            Seed = IntField(body, "seed"), TopK = IntField(body, "top_k") ?? 0,
            PresencePenalty = FloatField(body, "presence_penalty") ?? 0, FrequencyPenalty = FloatField(body, "frequency_penalty") ?? 0,
            RepetitionPenalty = FloatField(body, "repetition_penalty") ?? 1, LogitBias = LogitBias(body, deployment.Engine.Model.Tokenizer.VocabSize),
            Logprobs = logprobs,
        };
    }

    static Dictionary<int, float>? LogitBias(JsonObject body, int vocab)
    {
        if (body["logit_bias"] is null) return null;
        if (body["logit_bias"] is not JsonObject o) throw new BadRequest("logit_bias must be an object of token id → bias", "logit_bias");
        var bias = new Dictionary<int, float>();
        foreach (var (key, value) in o)
        {
            if (!int.TryParse(key, out var id) || id < 0 || id >= vocab) throw new BadRequest($"logit_bias: '{key}' is not a token id of this model (0 to {vocab - 1})", "logit_bias");
            if (value is not JsonValue v || v.GetValueKind() != JsonValueKind.Number) throw new BadRequest($"logit_bias: the bias of {key} must be a number", "logit_bias");
            bias[id] = v.GetValue<float>();
        }
        return bias;
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
            try { message["content"] = o["content"] is null && o["tool_calls"] is JsonArray ? "" : ChatTemplate.ContentText(o["content"] ?? throw new SioException("messages: every message needs content (a string or a list of text parts)")); }
            catch (SioException e) { throw new BadRequest(e.Message, "messages"); }
            list.Add(message);
        }
        bool noTools = body["tool_choice"] is JsonValue tc && tc.GetValueKind() == JsonValueKind.String && tc.GetValue<string>() == "none";
        var tools = body["tools"] switch
        {
            null => null,
            JsonArray when noTools => null, // tool_choice "none": the model is not offered the tools
            JsonArray a => (JsonArray)a.DeepClone(),
            _ => throw new BadRequest("tools must be a list", "tools"),
        };
        try { return template.Render(list, addGenerationPrompt: true, tools); }
        catch (SioException e) { throw new BadRequest(e.Message, "messages"); }
    }
}
