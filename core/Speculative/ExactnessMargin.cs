using System.Runtime.CompilerServices;
using Sio.Generation;

namespace Sio.Speculative;

/// <summary>
/// How far a model's logits move when a token is computed in a verification batch instead of alone, measured once per
/// model: a greedy continuation of BOS, its first 16 tokens prefilled as a prompt, is decoded one token at a time and
/// again verifying four tokens per pass (the first row of each pass kept, as a speculative step keeps it), and the largest difference, relative to the top logit,
/// times a safety factor of 4 becomes the margin under which a batch-computed row does not decide a greedy token
/// (<see cref="SpeculativeDecoder"/>). For float32 kernels the difference is rounding (about 1e-6, so the floor of
/// <see cref="SpeculativeDecoder.TieMargin"/> holds); ONNX Runtime's int4 kernel with int8 activations (accuracy level 4)
/// switches its numerical path with the number of rows on x64, and moves logits by up to a few hundredths: without a
/// measured margin a verification pass could pick a token plain decoding would not.
/// </summary>
public static class ExactnessMargin
{
    static readonly ConditionalWeakTable<Model, StrongBox<float>> Measured = new();
    public const int PromptTokens = 16, ProbeTokens = 48, VerifyWidth = 4, Safety = 4;

    public static float For(Model model)
    {
        lock (Measured)
        {
            if (Measured.TryGetValue(model, out var box)) return box.Value;
            float m = Math.Max(SpeculativeDecoder.TieMargin, Safety * Measure(model));
            Measured.Add(model, new StrongBox<float>(m));
            return m;
        }
    }

    /// <summary>The largest relative logit difference between one-token steps and the first rows of verification passes,
    /// both after the same prompt prefill (a batch of <see cref="PromptTokens"/>), as in a served request.</summary>
    public static float Measure(Model model)
    {
        int n = Math.Min(ProbeTokens, model.Config.ContextLength - PromptTokens - VerifyWidth - 2);
        if (n < 2) return 0;
        // the text: BOS and a greedy continuation of it (decoded one token at a time)
        var tokens = new List<int> { model.Config.BosTokenId };
        using (var g = new Generator(model, PromptTokens + n + VerifyWidth + 2))
        {
            g.AppendTokens([tokens[0]]);
            while (tokens.Count < PromptTokens + n + VerifyWidth) { tokens.Add(Sampler.ArgMax(g.LastLogits)); g.AppendTokens([tokens[^1]]); }
        }
        var prompt = tokens.Take(PromptTokens).ToArray();
        using var plain = new Generator(model, tokens.Count + 2);
        using var verify = new Generator(model, tokens.Count + 2);
        plain.AppendTokens(prompt);
        verify.AppendTokens(prompt);
        float worst = 0;
        for (int i = PromptTokens; i < PromptTokens + n; i++)
        {
            plain.AppendTokens([tokens[i]]);
            verify.AppendTokens(tokens.Skip(i).Take(VerifyWidth).ToArray());
            var reference = plain.LastLogits;
            var row = verify.Logits(0);
            float top = MathF.Max(1, MathF.Abs(reference[Sampler.ArgMax(reference)]));
            for (int j = 0; j < row.Length; j++) worst = MathF.Max(worst, MathF.Abs(row[j] - reference[j]) / top);
            verify.RewindTo(verify.Length - (VerifyWidth - 1));
        }
        return worst;
    }
}
