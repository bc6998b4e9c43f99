using System.Diagnostics;
using Sio.Speculative;

namespace Sio.Generation;

/// <summary>What one generation call may do.</summary>
public sealed record GenerationOptions
{
    /// <summary>Most new tokens; generation also ends at a stop token or the context's end.</summary>
    public int MaxTokens { get; init; } = 256;
    public SamplingOptions Sampling { get; init; } = new();
    /// <summary>Extra stop ids beside the model's own (EOS, and BOS for llama2.c models).</summary>
    public IReadOnlyList<int> StopTokens { get; init; } = [];
    /// <summary>Stop sequences: the serving engine ends a request at the first one its text contains, which is cut from the text (finish reason "stop").</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];
    /// <summary>Ignore the model's own stop tokens (EOS, BOS) and generate MaxTokens: fixed output lengths, as load benchmarks use.</summary>
    public bool IgnoreModelStopTokens { get; init; }
    /// <summary>Draft length settings when a drafter is given.</summary>
    public SpeculativeOptions Speculative { get; init; } = new();
}

public sealed record GenerationResult(
    IReadOnlyList<int> PromptTokenIds,
    IReadOnlyList<int> TokenIds,
    string Text,
    string FinishReason,
    double PrefillMs,
    double DecodeMs,
    SpeculativeStats Speculative)
{
    /// <summary>Decode tokens per second, the first (prefill) token excluded.</summary>
    public double DecodeTokensPerSecond => TokenIds.Count > 1 && DecodeMs > 0 ? (TokenIds.Count - 1) / (DecodeMs / 1000) : 0;
}

/// <summary>
/// The decode loop: prefill the prompt, then step until a stop token, the token budget or the
/// context's end. With a drafter each step may emit several tokens (speculative decoding);
/// without one each step is a plain decode step.
/// </summary>
public static class TextGeneration
{
    /// <param name="onToken">Called with each new id and the text it completes (streaming).</param>
    /// <param name="drafter">Proposes tokens for the target to verify; null for plain decoding.</param>
    public static GenerationResult Generate(Model model, IReadOnlyList<int> promptIds, GenerationOptions options,
        Action<int, string>? onToken = null, IDrafter? drafter = null, CancellationToken cancellation = default)
    {
        if (promptIds.Count == 0) throw new SioException("the prompt has no tokens");
        if (options.MaxTokens < 0) throw new SioException($"max tokens must be ≥ 0, got {options.MaxTokens}");
        if (promptIds.Count >= model.Config.ContextLength)
            throw new SioException($"the prompt has {promptIds.Count} tokens; the model's context is {model.Config.ContextLength}");
        var stops = (options.IgnoreModelStopTokens ? [] : model.StopTokens).Concat(options.StopTokens).ToHashSet();
        using var decoder = new SpeculativeDecoder(model, drafter, options.Sampling, options.Speculative);
        var stream = model.Tokenizer.CreateStream(promptIds[^1]);
        var output = new List<int>();
        var text = new System.Text.StringBuilder();
        string finish = "length";

        var clock = Stopwatch.StartNew();
        double prefillMs = 0;
        bool Emit(int id)
        {
            if (stops.Contains(id)) { finish = "stop"; return false; }
            output.Add(id);
            var piece = stream.Decode(id);
            text.Append(piece);
            onToken?.Invoke(id, piece);
            return output.Count < options.MaxTokens;
        }
        if (options.MaxTokens > 0)
        {
            bool going = Emit(decoder.Start(promptIds));
            prefillMs = clock.Elapsed.TotalMilliseconds;
            clock.Restart();
            while (going)
            {
                cancellation.ThrowIfCancellationRequested();
                var step = decoder.Step(options.MaxTokens - output.Count);
                if (step.Count == 0) break; // the context is full
                foreach (var id in step) if (!(going = Emit(id))) break;
            }
        }
        double decodeMs = clock.Elapsed.TotalMilliseconds;
        var tail = stream.Flush();
        text.Append(tail);
        if (tail.Length > 0) onToken?.Invoke(-1, tail);
        if (drafter is ILearningDrafter learner) learner.Learn(decoder.Context); // after the answer is complete: not the caller's latency
        return new GenerationResult(promptIds, output, text.ToString(), finish, prefillMs, decodeMs, decoder.Stats);
    }
}
