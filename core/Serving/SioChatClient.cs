using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using Sio.Generation;

namespace Sio.Serving;

/// <summary>
/// A sio model as a Microsoft.Extensions.AI <see cref="IChatClient"/>, for .NET apps that use a deployment in-process.
/// Requests run through the same continuously batched <see cref="InferenceEngine"/> as the server (concurrent calls
/// share its decode; speculation as <see cref="ServeOptions.Speculative"/> says). Options map one to one: Temperature,
/// TopP, TopK, MaxOutputTokens, Seed, StopSequences, PresencePenalty, FrequencyPenalty, ResponseFormat (JSON, with or
/// without a schema, by constrained decoding), Tools and ToolMode (calls rendered by the model's chat template, forced
/// ones constrained to the function's schema, read back as <see cref="FunctionCallContent"/>). The last update carries
/// the finish reason and token usage.
/// </summary>
public sealed class SioChatClient(Model model, bool ownsModel = false, ServeOptions? options = null) : IChatClient
{
    readonly InferenceEngine _engine = new(model, options ?? new ServeOptions());

    public string ModelId => Path.GetFileName(Path.GetFullPath(model.Folder).TrimEnd('/'));

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var text = new StringBuilder();
        ChatResponseUpdate? last = null;
        await foreach (var update in GetStreamingResponseAsync(messages, options, cancellationToken))
        {
            text.Append(update.Text);
            last = update;
        }
        var message = new ChatMessage(ChatRole.Assistant, [.. text.Length > 0 ? [new TextContent(text.ToString())] : Array.Empty<AIContent>(), .. last!.Contents.OfType<FunctionCallContent>()]);
        return new ChatResponse(message) { ModelId = ModelId, FinishReason = last.FinishReason, Usage = last.Contents.OfType<UsageContent>().Single().Details };
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var request = Prepare(messages, options);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var span = ServingTraces.Request("chat", ModelId, request.Generation, request.Prompt.Count, 1);
        var job = new GenerationJob(request.Prompt, request.Generation, cancel.Token);
        if (!_engine.TryEnqueue(job)) throw new SioException($"the engine is at capacity ({_engine.Options.MaxConcurrent} running, {_engine.Options.QueueCapacity} queued); retry later");
        var text = new StringBuilder();
        bool holding = request.Tools is not null;
        int sent = 0;
        try
        {
            await foreach (var piece in job.Pieces.Reader.ReadAllAsync(cancellationToken))
            {
                text.Append(piece); // the engine cuts the text at a stop sequence and ends the job there
                if (holding && request.Format.MayBeCall(text.ToString())) continue;
                holding = false;
                if (text.Length > sent) yield return new ChatResponseUpdate(ChatRole.Assistant, text.ToString(sent, text.Length - sent)) { ModelId = ModelId };
                sent = text.Length;
            }
        }
        finally
        {
            cancel.Cancel(); // a caller that stopped reading ends the job; then wait until the engine lets go of it
            try { await job.Result.Task; } catch (OperationCanceledException) { }
        }
        GenerationResult? result = job.Result.Task.IsCompletedSuccessfully ? job.Result.Task.Result : null;
        var last = Last(request, result, text.ToString(), holding ? 0 : sent);
        ServingTraces.Answered(span, $"chatcmpl-{span?.SpanId}", ModelId, [last.FinishReason?.Value ?? "stop"], result?.TokenIds.Count ?? 0);
        yield return last;
    }

    ChatResponseUpdate Last(Request request, GenerationResult? result, string text, int sent)
    {
        var contents = new List<AIContent>();
        var finish = result?.FinishReason == "stop" ? ChatFinishReason.Stop : ChatFinishReason.Length;
        var rest = text[sent..];
        if (request.Tools is not null && sent == 0 && request.Format.Parse(text, request.ToolNames!) is { Calls.Count: > 0 } parsed)
        {
            rest = parsed.Content ?? "";
            finish = ChatFinishReason.ToolCalls;
            contents.AddRange(parsed.Calls.Select(c => new FunctionCallContent($"call_{Guid.NewGuid():N}"[..24], c.Name,
                JsonSerializer.Deserialize<Dictionary<string, object?>>(c.Arguments))));
        }
        if (rest.Length > 0) contents.Insert(0, new TextContent(rest));
        int output = result?.TokenIds.Count ?? model.Tokenizer.Encode(text, addBos: false).Count;
        contents.Add(new UsageContent(new UsageDetails { InputTokenCount = request.Prompt.Count, OutputTokenCount = output, TotalTokenCount = request.Prompt.Count + output }));
        return new ChatResponseUpdate { Role = ChatRole.Assistant, ModelId = ModelId, FinishReason = finish, Contents = contents };
    }

    sealed record Request(List<int> Prompt, GenerationOptions Generation, IReadOnlyList<ToolFunction>? Tools, ToolCallFormat Format)
    {
        public IReadOnlySet<string>? ToolNames { get; } = Tools?.Select(t => t.Name).ToHashSet();
    }

    Request Prepare(IEnumerable<ChatMessage> messages, ChatOptions? options)
    {
        var template = model.ChatTemplate;
        var functions = options?.ToolMode is NoneChatToolMode ? null : options?.Tools?.OfType<AIFunctionDeclaration>()
            .Select(f => new ToolFunction(f.Name, JsonNode.Parse(f.JsonSchema.GetRawText()) as JsonObject)).ToList() is { Count: > 0 } fs ? fs : null;
        var text = template.Render(ChatMessages.ToJson(messages), addGenerationPrompt: true, functions is null ? null : ChatMessages.ToolsJson(options!.Tools!));
        var prompt = template.Tokenize(model.Tokenizer, text);
        int max = options?.MaxOutputTokens ?? Math.Max(1, model.Config.ContextLength - prompt.Count);
        if (prompt.Count + max > model.Config.ContextLength)
            throw new SioException($"the prompt ({prompt.Count} tokens) and MaxOutputTokens ({max}) exceed the model's context of {model.Config.ContextLength}");
        var grammar = Grammar(options, functions, template.ToolCalls);
        if (grammar is not null && max < grammar.MinTokens) throw new SioException($"MaxOutputTokens {max} is too few for {grammar.Name} (at least {grammar.MinTokens})");
        var sampling = new SamplingOptions
        {
            Temperature = options?.Temperature ?? 0f, TopP = options?.TopP ?? 1f, TopK = options?.TopK ?? 0, Seed = options?.Seed is long s ? (int)s : null,
            PresencePenalty = options?.PresencePenalty ?? 0, FrequencyPenalty = options?.FrequencyPenalty ?? 0, Json = grammar,
        }.Validate();
        return new Request(prompt, new GenerationOptions { MaxTokens = max, Sampling = sampling, StopStrings = options?.StopSequences?.ToList() ?? [] }, functions, template.ToolCalls);
    }

    /// <summary>A JSON ResponseFormat (with its schema, if any), or a required tool mode: what constrains the answer.</summary>
    static JsonGrammar? Grammar(ChatOptions? options, List<ToolFunction>? functions, ToolCallFormat format)
    {
        JsonGrammar? forced = options?.ToolMode switch
        {
            RequiredChatToolMode { RequiredFunctionName: string name } => format.Grammar([functions?.FirstOrDefault(f => f.Name == name)
                ?? throw new SioException($"ToolMode requires '{name}', which is not one of the Tools")]),
            RequiredChatToolMode => format.Grammar(functions ?? throw new SioException("ToolMode requires a call, but no Tools were given")),
            _ => null,
        };
        JsonGrammar? json = options?.ResponseFormat switch
        {
            ChatResponseFormatJson { Schema: { } schema } j => JsonGrammar.FromSchema(JsonNode.Parse(schema.GetRawText()) as JsonObject
                ?? throw new SioException("ResponseFormat: the schema must be a JSON object"), $"the schema '{j.SchemaName ?? "response"}'"),
            ChatResponseFormatJson => JsonGrammar.AnyObject,
            _ => null,
        };
        if (forced is not null && json is not null) throw new SioException("ResponseFormat and a required ToolMode cannot both shape the answer; drop one");
        return forced ?? json;
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType.IsInstanceOfType(this) ? this
        : serviceKey is null && serviceType == typeof(ChatClientMetadata) ? new ChatClientMetadata("sio", null, ModelId)
        : serviceKey is null && serviceType == typeof(Model) ? model
        : null;

    public void Dispose()
    {
        _engine.Dispose();
        if (ownsModel) model.Dispose();
    }
}
