using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.Extensions.AI;
using Sio.Generation;
using Sio.Speculative;

namespace Sio.Serving;

/// <summary>
/// A sio model as a Microsoft.Extensions.AI <see cref="IChatClient"/>, for .NET apps that use a
/// deployment in-process. Options map one to one (Temperature, TopP, TopK, MaxOutputTokens, Seed,
/// StopSequences, PresencePenalty, FrequencyPenalty); a JSON ResponseFormat or a required tool mode is refused, not
/// ignored. The last update carries the finish reason and token usage.
/// </summary>
public sealed class SioChatClient(Model model, bool ownsModel = false, IDrafter? drafter = null) : IChatClient
{
    readonly SemaphoreSlim _one = new(1, 1); // a drafter serves one request at a time
    ChatTemplate _template => model.ChatTemplate;

    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        Task.Run(async () =>
        {
            await _one.WaitAsync(cancellationToken);
            try
            {
                var (prompt, generation, stops) = Prepare(messages, options);
                var matcher = new StopMatcher(stops);
                var text = new System.Text.StringBuilder();
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                GenerationResult? r = null;
                try
                {
                    r = TextGeneration.Generate(model, prompt, generation, (_, piece) =>
                    {
                        text.Append(matcher.Feed(piece));
                        if (matcher.Stopped) cts.Cancel();
                    }, drafter, cts.Token);
                }
                catch (OperationCanceledException) when (matcher.Stopped) { }
                text.Append(matcher.Flush());
                return new ChatResponse(new ChatMessage(ChatRole.Assistant, text.ToString()))
                {
                    ModelId = ModelId,
                    FinishReason = matcher.Stopped || r?.FinishReason == "stop" ? ChatFinishReason.Stop : ChatFinishReason.Length,
                    Usage = new UsageDetails { InputTokenCount = prompt.Count, OutputTokenCount = r?.TokenIds.Count, TotalTokenCount = prompt.Count + (r?.TokenIds.Count ?? 0) },
                };
            }
            finally { _one.Release(); }
        }, cancellationToken);

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var (prompt, generation, stops) = Prepare(messages, options);
        var pieces = Channel.CreateUnbounded<string>();
        var matcher = new StopMatcher(stops);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var run = Task.Run(async () =>
        {
            await _one.WaitAsync(cts.Token);
            try
            {
                return TextGeneration.Generate(model, prompt, generation, (_, piece) =>
                {
                    var safe = matcher.Feed(piece);
                    if (safe.Length > 0) pieces.Writer.TryWrite(safe);
                    if (matcher.Stopped) cts.Cancel();
                }, drafter, cts.Token);
            }
            catch (OperationCanceledException) when (matcher.Stopped || cts.IsCancellationRequested) { return null; }
            finally
            {
                var tail = matcher.Flush();
                if (tail.Length > 0) pieces.Writer.TryWrite(tail);
                pieces.Writer.TryComplete();
                _one.Release();
            }
        }, CancellationToken.None);
        GenerationResult? r;
        try
        {
            await foreach (var piece in pieces.Reader.ReadAllAsync(cancellationToken))
                yield return new ChatResponseUpdate(ChatRole.Assistant, piece) { ModelId = ModelId };
            r = await run;
        }
        finally
        {
            if (!run.IsCompleted) // the caller stopped reading: stop generating, and wait so the drafter is free again
            {
                cts.Cancel();
                try { await run; } catch (OperationCanceledException) { }
            }
        }
        yield return new ChatResponseUpdate
        {
            Role = ChatRole.Assistant,
            ModelId = ModelId,
            FinishReason = matcher.Stopped || r?.FinishReason == "stop" ? ChatFinishReason.Stop : ChatFinishReason.Length,
            Contents = [new UsageContent(new UsageDetails { InputTokenCount = prompt.Count, OutputTokenCount = r?.TokenIds.Count, TotalTokenCount = prompt.Count + (r?.TokenIds.Count ?? 0) })],
        };
    }

    public string ModelId => Path.GetFileName(Path.GetFullPath(model.Folder).TrimEnd('/'));

    (List<int> Prompt, GenerationOptions Options, IReadOnlyList<string> Stops) Prepare(IEnumerable<ChatMessage> messages, ChatOptions? options)
    {
        var text = _template.Render(messages.Select(m => (m.Role.Value, m.Text ?? "")));
        var prompt = _template.Tokenize(model.Tokenizer, text);
        int max = options?.MaxOutputTokens ?? Math.Max(1, model.Config.ContextLength - prompt.Count);
        if (prompt.Count + max > model.Config.ContextLength)
            throw new SioException($"the prompt ({prompt.Count} tokens) and MaxOutputTokens ({max}) exceed the model's context of {model.Config.ContextLength}");
        if (options?.ResponseFormat is ChatResponseFormatJson) throw new SioException("ResponseFormat: sio does not implement JSON output yet (it needs constrained decoding)");
        if (options?.ToolMode is RequiredChatToolMode) throw new SioException("ToolMode: sio does not implement forced tool calls yet");
        var sampling = new SamplingOptions
        {
            Temperature = options?.Temperature ?? 0f, TopP = options?.TopP ?? 1f, TopK = options?.TopK ?? 0, Seed = options?.Seed is long s ? (int)s : null,
            PresencePenalty = options?.PresencePenalty ?? 0, FrequencyPenalty = options?.FrequencyPenalty ?? 0,
        }.Validate();
        return (prompt, new GenerationOptions { MaxTokens = max, Sampling = sampling }, options?.StopSequences?.ToList() ?? []);
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType.IsInstanceOfType(this) ? this
        : serviceKey is null && serviceType == typeof(ChatClientMetadata) ? new ChatClientMetadata("sio", null, ModelId)
        : serviceKey is null && serviceType == typeof(Model) ? model
        : null;

    public void Dispose()
    {
        if (ownsModel) model.Dispose();
        _one.Dispose();
    }
}
