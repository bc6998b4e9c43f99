using Sio.Generation;

namespace Sio.Evaluation;

public sealed record AgreementResult(int Prompts, int TokensPerPrompt, double TokenAgreement, double ExactMatch);

/// <summary>
/// How often a model's greedy continuation equals a baseline's on the same prompts: the fraction of
/// positions with the same token, and the fraction of prompts continued identically.
/// </summary>
public static class GreedyAgreement
{
    /// <summary>The prompt of a record: a prompt row's prompt (<see cref="RecordPrompt"/>), or a text's first <paramref name="textPrefixTokens"/> tokens (BOS included).</summary>
    public static List<int> PromptOf(Model model, DatasetRecord r, int textPrefixTokens = 16) =>
        r.IsPromptResponse ? RecordPrompt.Ids(model, r) : RecordPrompt.Ids(model, r).Take(textPrefixTokens).ToList();

    public static AgreementResult Compare(Model model, Model baseline, Dataset data, int prompts = 50, int tokens = 32)
    {
        int used = 0, same = 0;
        long positions = 0, matches = 0;
        var options = new GenerationOptions { MaxTokens = tokens };
        foreach (var r in data.Records)
        {
            if (used >= prompts) break;
            var prompt = PromptOf(model, r);
            if (prompt.Count + tokens > Math.Min(model.Config.ContextLength, baseline.Config.ContextLength)) continue;
            var a = TextGeneration.Generate(model, prompt, options).TokenIds;
            var b = TextGeneration.Generate(baseline, prompt, options).TokenIds;
            int n = Math.Max(a.Count, b.Count);
            for (int i = 0; i < n; i++) if (i < a.Count && i < b.Count && a[i] == b[i]) matches++;
            positions += n;
            if (a.SequenceEqual(b)) same++;
            used++;
        }
        if (used == 0) throw SioException.InFile(data.Path, "no record leaves room for a continuation within the context");
        return new AgreementResult(used, tokens, positions > 0 ? (double)matches / positions : 1, (double)same / used);
    }
}
