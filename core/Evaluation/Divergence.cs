using Sio.Generation;

namespace Sio.Evaluation;

/// <summary>
/// How far a model's next-token distributions are from a reference's (the float original), as llama.cpp's
/// perplexity tool reports it: the KL divergence KL(reference ‖ model) per scored token (mean, p99, max), the rate at
/// which both put the same token on top, and both perplexities on exactly the same tokens.
/// </summary>
public sealed record DivergenceResult(int Records, long Tokens, double MeanKld, double P99Kld, double MaxKld, double SameTopToken,
    double Perplexity, double ReferencePerplexity)
{
    public double PerplexityIncreasePercent => (Perplexity / ReferencePerplexity - 1) * 100;
}

public static class Divergence
{
    /// <summary>Teacher-forces every record through both models (the same token ids: the vocabularies must be the same)
    /// and compares their distributions at each scored position.</summary>
    public static DivergenceResult Compare(Model model, Model reference, Dataset dataset, int maxTokensPerRecord = 0, IProgress<int>? progress = null)
    {
        if (model.Tokenizer.Fingerprint() != reference.Tokenizer.Fingerprint())
            throw new SioException("the reference model's vocabulary differs from the model's: KL divergence needs the same token ids");
        if (model.Config.VocabSize != reference.Config.VocabSize)
            throw new SioException($"the models' classifiers differ in size ({model.Config.VocabSize} and {reference.Config.VocabSize} logits): KL divergence needs the same ones");
        int context = Math.Min(model.Config.ContextLength, reference.Config.ContextLength);
        int budget = maxTokensPerRecord > 0 ? Math.Min(maxTokensPerRecord, context) : context;
        using var mine = new Generator(model, budget);
        using var theirs = new Generator(reference, budget);
        var klds = new List<double>();
        double nll = 0, refNll = 0;
        long same = 0;
        int used = 0;
        var p = new double[reference.Config.VocabSize];
        var q = new double[model.Config.VocabSize];
        foreach (var record in dataset.Records)
        {
            var (ids, first) = Perplexity.Tokens(reference, record, budget);
            if (ids.Count <= first) continue;
            mine.RewindTo(0);
            theirs.RewindTo(0);
            mine.AppendTokens(ids.ToArray());
            theirs.AppendTokens(ids.ToArray());
            for (int i = first; i < ids.Count; i++)
            {
                int top = LogSoftmax(theirs.Logits(i - 1), p), myTop = LogSoftmax(mine.Logits(i - 1), q);
                klds.Add(Kld(p, q));
                if (top == myTop) same++;
                refNll -= p[ids[i]];
                nll -= q[ids[i]];
            }
            used++;
            progress?.Report(used);
        }
        if (klds.Count == 0) throw SioException.InFile(dataset.Path, "no record has a token to score");
        klds.Sort();
        int n = klds.Count;
        return new DivergenceResult(used, n, klds.Average(), klds[Math.Min(n - 1, (int)Math.Ceiling(0.99 * n) - 1)], klds[^1], (double)same / n,
            Math.Exp(nll / n), Math.Exp(refNll / n));
    }

    /// <summary>Writes log-softmax(logits) into <paramref name="logProbs"/>; returns the index of the largest logit.</summary>
    static int LogSoftmax(ReadOnlySpan<float> logits, double[] logProbs)
    {
        int top = 0;
        for (int j = 1; j < logits.Length; j++) if (logits[j] > logits[top]) top = j;
        double max = logits[top], sum = 0;
        for (int j = 0; j < logits.Length; j++) sum += Math.Exp(logits[j] - max);
        double log = max + Math.Log(sum);
        for (int j = 0; j < logits.Length; j++) logProbs[j] = logits[j] - log;
        return top;
    }

    /// <summary>KL(P ‖ Q) = Σ p (log p − log q), from log-probabilities; never below 0 (rounding).</summary>
    static double Kld(double[] logP, double[] logQ)
    {
        double kld = 0;
        for (int j = 0; j < logP.Length; j++) kld += Math.Exp(logP[j]) * (logP[j] - logQ[j]);
        return Math.Max(0, kld);
    }
}
