using System.Numerics.Tensors;
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
        int vocab = reference.Config.VocabSize;
        var (logP, logQ, probP, diff) = (new float[vocab], new float[vocab], new float[vocab], new float[vocab]);
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
                int top = LogSoftmax(theirs.Logits(i - 1), logP, probP), myTop = LogSoftmax(mine.Logits(i - 1), logQ, diff);
                TensorPrimitives.Subtract(logP, logQ, diff);
                klds.Add(Math.Max(0, TensorPrimitives.Dot(probP, diff))); // KL(P‖Q) = Σ p (log p − log q), never below 0 (rounding)
                if (top == myTop) same++;
                refNll -= logP[ids[i]];
                nll -= logQ[ids[i]];
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

    /// <summary>Writes log-softmax(logits) into <paramref name="logProbs"/> and the probabilities into <paramref name="probs"/>
    /// (SIMD, single precision: a 128,256-token vocabulary costs tens of microseconds); returns the index of the largest logit.</summary>
    static int LogSoftmax(ReadOnlySpan<float> logits, Span<float> logProbs, Span<float> probs)
    {
        int top = TensorPrimitives.IndexOfMax(logits);
        TensorPrimitives.Subtract(logits, logits[top], logProbs);
        TensorPrimitives.Exp(logProbs, probs);
        float sum = TensorPrimitives.Sum(probs);
        TensorPrimitives.Subtract(logProbs, MathF.Log(sum), logProbs);
        TensorPrimitives.Divide(probs, sum, probs);
        return top;
    }
}
