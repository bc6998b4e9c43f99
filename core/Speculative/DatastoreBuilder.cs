using System.Text.Json.Nodes;
using Sio.Evaluation;
using Sio.Generation;

namespace Sio.Speculative;

/// <summary>
/// A self-distilled datastore for <see cref="DatastoreDrafter"/>: the user's own records, plus the
/// target's greedy continuations of their openings (several opening lengths per record). A model
/// repeats its own phrasing across requests far more than it repeats any corpus, so retrieval from
/// what it wrote drafts what it will write.
/// </summary>
public static class DatastoreBuilder
{
    public static int Build(Model model, Dataset data, string outFile, IReadOnlyList<int> prefixTokens, int maxTokens, IProgress<string>? progress = null)
    {
        if (prefixTokens.Count == 0 || prefixTokens.Any(p => p < 1)) throw new SioException("--prefix-tokens must list lengths ≥ 1");
        if (maxTokens < 1) throw new SioException($"--max-tokens must be ≥ 1, got {maxTokens}");
        var temp = outFile + $".tmp-{Guid.NewGuid():N}";
        int written = 0;
        try
        {
            using (var w = new StreamWriter(temp))
            {
                int n = 0;
                foreach (var r in data.Records)
                {
                    progress?.Report($"record {++n}/{data.Records.Count}");
                    var text = r.IsPromptResponse ? r.Prompt + r.Response : r.Text!;
                    w.WriteLine(new JsonObject { ["text"] = text }.ToJsonString());
                    written++;
                    var ids = model.Tokenizer.Encode(text);
                    foreach (var p in prefixTokens.Distinct())
                    {
                        if (p + 1 >= ids.Count) continue;
                        var prompt = ids.Take(p + 1).ToList(); // BOS + p tokens
                        int budget = Math.Min(maxTokens, model.Config.ContextLength - prompt.Count);
                        if (budget < 1) continue;
                        var result = TextGeneration.Generate(model, prompt, new GenerationOptions { MaxTokens = budget });
                        w.WriteLine(new JsonObject { ["text"] = model.Tokenizer.Decode(prompt.Skip(1), prompt[0]) + result.Text }.ToJsonString());
                        written++;
                    }
                }
            }
            File.Move(temp, outFile, overwrite: true);
            return written;
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }
}
