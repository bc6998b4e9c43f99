using Sio.Generation;

namespace Sio.Evaluation;

/// <param name="EmptyBoth">Prompts that both models ended at once (nothing to compare): left out of every rate.</param>
public sealed record AgreementResult(int Prompts, int TokensPerPrompt, double TokenAgreement, double ExactMatch, int EmptyBoth = 0);

/// <summary>
/// How often a model's greedy continuation equals a baseline's on the same prompts: the fraction of
/// positions with the same token, and the fraction of prompts continued identically. A prompt both models end at once
/// (two empty continuations) says nothing about agreement and is left out, never counted as identical.
/// </summary>
public static class GreedyAgreement
{
    /// <summary>The prompt of a record: a prompt row's prompt (<see cref="RecordPrompt"/>), or a text's first <paramref name="textPrefixTokens"/> tokens (BOS included).</summary>
    public static List<int> PromptOf(Model model, DatasetRecord r, int textPrefixTokens = 16) =>
        r.IsPromptResponse ? RecordPrompt.Ids(model, r) : RecordPrompt.Ids(model, r).Take(textPrefixTokens).ToList();

    public static AgreementResult Compare(Model model, Model baseline, Dataset data, int prompts = 50, int tokens = 32)
    {
        int used = 0, same = 0, empty = 0;
        long positions = 0, matches = 0;
        var options = new GenerationOptions { MaxTokens = tokens };
        foreach (var r in data.Records)
        {
            if (used >= prompts) break;
            var prompt = PromptOf(model, r);
            if (prompt.Count + tokens > Math.Min(model.Config.ContextLength, baseline.Config.ContextLength)) continue;
            var a = TextGeneration.Generate(model, prompt, options).TokenIds;
            var b = TextGeneration.Generate(baseline, prompt, options).TokenIds;
            if (a.Count == 0 && b.Count == 0) { empty++; continue; }
            int n = Math.Max(a.Count, b.Count);
            for (int i = 0; i < n; i++) if (i < a.Count && i < b.Count && a[i] == b[i]) matches++;
            positions += n;
            if (a.SequenceEqual(b)) same++;
            used++;
        }
        if (used == 0 && empty > 0) throw SioException.InFile(data.Path, $"both models ended all {empty} continuations at once: there is nothing to compare");
        if (used == 0) throw SioException.InFile(data.Path, "no record leaves room for a continuation within the context");
        return new AgreementResult(used, tokens, (double)matches / positions, (double)same / used, empty);
    }
}
