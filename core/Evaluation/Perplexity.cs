using Sio.Generation;
using Sio.Tokenization;

namespace Sio.Evaluation;

public sealed record PerplexityResult(int Records, long TokensScored, double MeanNll, int Skipped)
{
    public double Perplexity => Math.Exp(MeanNll);
}

/// <summary>
/// Perplexity by teacher forcing. Each record is scored on its own: BOS + encode(text), cut to a
/// token budget; the mean negative log-likelihood is taken over every predicted token of every
/// record. For prompt/response rows only the response tokens count, conditioned on the prompt.
/// </summary>
public static class Perplexity
{
    /// <summary>The ids of a record and the index of the first token that is scored.</summary>
    public static (List<int> Ids, int FirstScored) Tokens(Model model, DatasetRecord r, int maxTokens)
    {
        var tokenizer = model.Tokenizer;
        List<int> ids;
        int first;
        if (!r.IsPromptResponse)
        {
            ids = tokenizer.Encode(r.Text!);
            first = 1;
        }
        else
        {
            var prompt = RecordPrompt.Ids(model, r);
            if (r.Turns is { Count: > 0 } && !model.ChatTemplate.IsPlain)
            {
                // the response is the assistant's turn after the template's generation prompt
                ids = [.. prompt, .. tokenizer.Encode(r.Response!, addBos: false)];
                first = prompt.Count;
            }
            else
            {
                ids = tokenizer.Encode(r.Prompt + r.Response);
                first = 0;
                while (first < prompt.Count && first < ids.Count && prompt[first] == ids[first]) first++;
            }
            first = Math.Max(first, 1);
        }
        if (ids.Count > maxTokens) ids.RemoveRange(maxTokens, ids.Count - maxTokens);
        return (ids, first);
    }

    public static PerplexityResult Evaluate(Model model, Dataset dataset, int maxTokensPerRecord = 0, IProgress<int>? progress = null)
    {
        int budget = maxTokensPerRecord > 0 ? Math.Min(maxTokensPerRecord, model.Config.ContextLength) : model.Config.ContextLength;
        using var generator = new Generator(model, budget);
        double nll = 0;
        long scored = 0;
        int used = 0, skipped = dataset.Skipped;
        foreach (var record in dataset.Records)
        {
            var (ids, first) = Tokens(model, record, budget);
            if (ids.Count <= first) { skipped++; continue; }   // nothing left to score after the cut
            generator.RewindTo(0);
            generator.AppendTokens(ids.ToArray());
            for (int i = first; i < ids.Count; i++)
            {
                nll -= LogSoftmaxAt(generator.Logits(i - 1), ids[i]);
                scored++;
            }
            used++;
            progress?.Report(used);
        }
        if (scored == 0) throw SioException.InFile(dataset.Path, "no record has a token to score");
        return new PerplexityResult(used, scored, nll / scored, skipped);
    }

    public static double LogSoftmaxAt(ReadOnlySpan<float> logits, int target)
    {
        float max = float.NegativeInfinity;
        foreach (var l in logits) max = MathF.Max(max, l);
        double sum = 0;
        foreach (var l in logits) sum += Math.Exp(l - max);
        return logits[target] - max - Math.Log(sum);
    }
}
