using Sio.Evaluation;
using Sio.Generation;

namespace Sio.Benchmarking;

/// <summary>Output quality of a model against a baseline on the same prompts.</summary>
public sealed record QualityResult(
    double? Perplexity, double? BaselinePerplexity, double TokenAgreement, double ExactMatch,
    double? RougeL, double? BaselineRougeL, int Prompts, int ReferenceRecords, int EmptyBoth = 0, double? MeanKld = null, double? P99Kld = null, double? SameTopToken = null);

public static class QualityComparison
{
    /// <summary>
    /// Perplexity of the reference responses (where the dataset has them) for both models; greedy
    /// token agreement and exact match against the baseline (a prompt both models end at once is left out: two empty
    /// answers agree on nothing); the KL divergence of the model's next-token distributions from the baseline's on the
    /// reference responses, or on the texts of a plain-text dataset (same vocabulary only); ROUGE-L F1 of each model's greedy answer against the reference response.
    /// </summary>
    public static QualityResult Compare(Model model, Model baseline, BenchmarkPrompts prompts, int maxNewTokens, int maxPrompts = 32)
    {
        var refs = prompts.Records.Where(r => r.IsPromptResponse && !string.IsNullOrEmpty(r.Response)).ToList();
        double? ppl = null, basePpl = null;
        DivergenceResult? divergence = null;
        // the distributions on the reference responses, or, for a dataset of plain texts, on the texts themselves
        var compared = refs.Count > 0 ? refs : prompts.Records.Where(r => !r.IsPromptResponse && !string.IsNullOrEmpty(r.Text)).Take(maxPrompts).ToList();
        if (compared.Count > 0 && model.Tokenizer.Fingerprint() == baseline.Tokenizer.Fingerprint() && model.Config.VocabSize == baseline.Config.VocabSize)
            divergence = Divergence.Compare(model, baseline, new Dataset("quality", compared, 0, ""), maxTokensPerRecord: refs.Count > 0 ? 0 : 256);
        if (refs.Count > 0 && divergence is not null) (ppl, basePpl) = (divergence.Perplexity, divergence.ReferencePerplexity); // both, from the same pass
        else if (refs.Count > 0)
        {
            var ds = new Dataset("references", refs, 0, "");
            ppl = Perplexity.Evaluate(model, ds).Perplexity;
            basePpl = Perplexity.Evaluate(baseline, ds).Perplexity;
        }
        var options = new GenerationOptions { MaxTokens = maxNewTokens };
        long positions = 0, matches = 0;
        int same = 0, n = 0, empty = 0;
        var rouge = new List<double>();
        var baseRouge = new List<double>();
        for (int i = 0; i < prompts.Prompts.Count && n + empty < maxPrompts; i++)
        {
            var a = TextGeneration.Generate(model, prompts.Prompts[i], options);
            var b = TextGeneration.Generate(baseline, prompts.Prompts[i], options);
            if (a.TokenIds.Count == 0 && b.TokenIds.Count == 0) { empty++; continue; }
            n++;
            int len = Math.Max(a.TokenIds.Count, b.TokenIds.Count);
            for (int j = 0; j < len; j++) if (j < a.TokenIds.Count && j < b.TokenIds.Count && a.TokenIds[j] == b.TokenIds[j]) matches++;
            positions += len;
            if (a.TokenIds.SequenceEqual(b.TokenIds)) same++;
            var r = prompts.Records[i];
            if (r.IsPromptResponse && !string.IsNullOrEmpty(r.Response))
            {
                rouge.Add(RougeL(a.Text, r.Response));
                baseRouge.Add(RougeL(b.Text, r.Response));
            }
        }
        return new QualityResult(ppl, basePpl, positions > 0 ? (double)matches / positions : 0, n > 0 ? (double)same / n : 0,
            rouge.Count > 0 ? rouge.Average() : null, baseRouge.Count > 0 ? baseRouge.Average() : null, n, refs.Count, empty,
            divergence?.MeanKld, divergence?.P99Kld, divergence?.SameTopToken);
    }

    /// <summary>ROUGE-L F1 over lower-cased word tokens: the longest common subsequence against both lengths.</summary>
    public static double RougeL(string candidate, string reference)
    {
        var c = Words(candidate);
        var r = Words(reference);
        if (c.Length == 0 || r.Length == 0) return 0;
        var prev = new int[r.Length + 1];
        var cur = new int[r.Length + 1];
        for (int i = 1; i <= c.Length; i++)
        {
            for (int j = 1; j <= r.Length; j++)
                cur[j] = c[i - 1] == r[j - 1] ? prev[j - 1] + 1 : Math.Max(prev[j], cur[j - 1]);
            (prev, cur) = (cur, prev);
        }
        double lcs = prev[r.Length];
        if (lcs == 0) return 0;
        double p = lcs / c.Length, rec = lcs / r.Length;
        return 2 * p * rec / (p + rec);
    }

    static string[] Words(string s) => System.Text.RegularExpressions.Regex.Matches(s.ToLowerInvariant(), @"[\p{L}\p{N}']+").Select(m => m.Value).ToArray();
}
