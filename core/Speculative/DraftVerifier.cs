using Sio.Generation;

namespace Sio.Speculative;

/// <summary>The target's logits for the token after fed position <paramref name="position"/> of a verification pass.</summary>
public delegate ReadOnlySpan<float> LogitsAt(int position);

/// <summary>
/// What verification decided: the first <see cref="Accepted"/> drafts stand and <see cref="Next"/> is the target's
/// own token after them; or, at a near-tie (<see cref="NearTie"/>, Next = −1), the token after the accepted drafts
/// must not be decided from this batch-computed row (the caller recomputes it one token at a time).
/// </summary>
public readonly record struct Verdict(int Accepted, int Next, bool NearTie);

/// <summary>
/// The one acceptance rule of speculative decoding, used by <see cref="SpeculativeDecoder"/> and by the serving
/// engine's batch rows. Greedy: a draft stands while it is the target's argmax, so the output is plain greedy decoding's,
/// and a row whose top-2 logits are closer than the model's <see cref="ExactnessMargin"/> decides nothing (logits
/// computed in a batch differ from a one-token step in the last bits, which can flip a near-tied argmax). Sampling: a
/// draft x stands with probability min(1, p(x)/q(x)), else the token is drawn from norm(max(0, p − q)), so the output
/// follows the target's distribution.
/// </summary>
public sealed class DraftVerifier(float margin)
{
    /// <summary>Top-2 logit margin, relative to the top logit, under which a batch-computed row does not decide a greedy token.</summary>
    public float Margin => margin;

    /// <summary>Verifies <paramref name="drafts"/> against the target's rows 0..drafts.Length (row i follows the pending token and drafts[..i]).</summary>
    /// <remarks>Penalties, biases and a JSON constraint shape each row as if the drafts before it had been emitted, so a
    /// draft the constraint forbids is rejected like any other token the target would not choose.</remarks>
    public Verdict Verify(ReadOnlySpan<int> drafts, LogitsAt logits, Sampler sampler, float[][]? distributions = null)
    {
        var shaped = sampler.Lookahead(drafts, logits);
        return sampler.Options.IsGreedy ? Greedy(drafts, shaped) : Sampled(drafts, shaped, sampler, distributions);
    }

    Verdict Greedy(ReadOnlySpan<int> drafts, LogitsAt logitsAt)
    {
        for (int i = 0; ; i++)
        {
            var logits = logitsAt(i);
            int best = Sampler.ArgMax(logits);
            if (IsNearTie(logits, best, margin)) return new(i, -1, true);
            if (i == drafts.Length || best != drafts[i]) return new(i, best, false);
        }
    }

    static Verdict Sampled(ReadOnlySpan<int> drafts, LogitsAt logits, Sampler sampler, float[][]? distributions)
    {
        for (int i = 0; i < drafts.Length; i++)
        {
            var p = sampler.Distribution(logits(i)).ToArray();
            int x = drafts[i];
            float q = distributions?[i][x] ?? 1f;
            if (q > 0 && sampler.NextUniform() < Math.Min(1.0, p[x] / q)) continue;
            return new(i, sampler.Draw(Residual(p, distributions?[i], x)), false);
        }
        return new(drafts.Length, sampler.Draw(sampler.Distribution(logits(drafts.Length))), false); // the row is shaped already
    }

    /// <summary>Whether another logit is within <paramref name="relative"/> (of the top logit) of the best.</summary>
    public static bool IsNearTie(ReadOnlySpan<float> logits, int best, float relative)
    {
        float top = logits[best], margin = relative * MathF.Max(1, MathF.Abs(top));
        for (int i = 0; i < logits.Length; i++)
            if (i != best && top - logits[i] < margin) return true;
        return false;
    }

    /// <summary>norm(max(0, p − q)); q is one-hot on <paramref name="drafted"/> when the drafter chose deterministically.</summary>
    static float[] Residual(float[] p, float[]? q, int drafted)
    {
        var r = new float[p.Length];
        double sum = 0;
        for (int i = 0; i < p.Length; i++)
        {
            float qi = q is null ? (i == drafted ? 1f : 0f) : q[i];
            r[i] = MathF.Max(0, p[i] - qi);
            sum += r[i];
        }
        if (sum <= 0) return p; // p == q: a rejection had probability 0
        for (int i = 0; i < r.Length; i++) r[i] = (float)(r[i] / sum);
        return r;
    }
}
