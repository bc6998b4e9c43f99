using System.Diagnostics;

namespace Sio.Generation;

/// <summary>What one generation call may do.</summary>
public sealed record GenerationOptions
{
    /// <summary>Most new tokens; generation also ends at a stop token or the context's end.</summary>
    public int MaxTokens { get; init; } = 256;
    public SamplingOptions Sampling { get; init; } = new();
    /// <summary>Extra stop ids beside the model's own (EOS, and BOS for llama2.c models).</summary>
    public IReadOnlyList<int> StopTokens { get; init; } = [];
}

public sealed record GenerationResult(
    IReadOnlyList<int> PromptTokenIds,
    IReadOnlyList<int> TokenIds,
    string Text,
    string FinishReason,
    double PrefillMs,
    double DecodeMs)
{
    /// <summary>Decode tokens per second, the first (prefill) token excluded.</summary>
    public double DecodeTokensPerSecond => TokenIds.Count > 1 && DecodeMs > 0 ? (TokenIds.Count - 1) / (DecodeMs / 1000) : 0;
}

/// <summary>The plain decode loop: prefill the prompt, then sample one token per step.</summary>
public static class TextGeneration
{
    /// <param name="onToken">Called with each new id and the text it completes (streaming).</param>
    public static GenerationResult Generate(Model model, IReadOnlyList<int> promptIds, GenerationOptions options,
        Action<int, string>? onToken = null, CancellationToken cancellation = default)
    {
        if (promptIds.Count == 0) throw new SioException("the prompt has no tokens");
        if (options.MaxTokens < 0) throw new SioException($"max tokens must be ≥ 0, got {options.MaxTokens}");
        if (promptIds.Count >= model.Config.ContextLength)
            throw new SioException($"the prompt has {promptIds.Count} tokens; the model's context is {model.Config.ContextLength}");
        var sampler = new Sampler(options.Sampling);
        var stops = model.StopTokens.Concat(options.StopTokens).ToHashSet();
        using var generator = new Generator(model);
        var stream = model.Tokenizer.CreateStream(promptIds[^1]);
        var output = new List<int>();
        var text = new System.Text.StringBuilder();
        string finish = "length";

        var clock = Stopwatch.StartNew();
        double prefillMs = 0;
        if (options.MaxTokens > 0) generator.AppendTokens(promptIds.ToArray());
        while (output.Count < options.MaxTokens)
        {
            cancellation.ThrowIfCancellationRequested();
            int next = sampler.Sample(generator.LastLogits);
            if (output.Count == 0) { prefillMs = clock.Elapsed.TotalMilliseconds; clock.Restart(); }
            if (stops.Contains(next)) { finish = "stop"; break; }
            output.Add(next);
            var piece = stream.Decode(next);
            text.Append(piece);
            onToken?.Invoke(next, piece);
            if (output.Count == options.MaxTokens || generator.Remaining == 0) break;
            generator.AppendTokens([next]);
        }
        var tail = stream.Flush();
        text.Append(tail);
        if (tail.Length > 0) onToken?.Invoke(-1, tail);
        return new GenerationResult(promptIds, output, text.ToString(), finish, prefillMs, clock.Elapsed.TotalMilliseconds);
    }
}
