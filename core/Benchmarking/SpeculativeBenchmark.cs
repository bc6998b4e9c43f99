using Sio.Evaluation;
using Sio.Generation;
using Sio.Speculative;

namespace Sio.Benchmarking;

public sealed record SpeculativeBenchmarkOptions
{
    public int Prompts { get; init; } = 20;
    /// <summary>Text rows are cut to this many tokens (BOS included) to make the prompt; prompt rows keep their prompt.</summary>
    public int PromptTokens { get; init; } = 48;
    public int MaxTokens { get; init; } = 200;
    public int? DraftTokens { get; init; }
    public int Threads { get; init; }
}

public sealed record DrafterResult(string Drafter, int Prompts, long Tokens, double DecodeSeconds, double DecodeTokensPerSecond, double Speedup,
    bool IdenticalToPlain, SpeculativeStats Stats);

/// <summary>
/// Decode tokens/s at batch 1 with and without each drafter, on the same prompts and token counts,
/// greedy, in one run, interleaved prompt by prompt (a warm-up prompt first). Checks that every drafter's output equals
/// plain decoding token for token.
/// </summary>
public static class SpeculativeBenchmark
{
    public static List<DrafterResult> Run(Model target, Dataset data, IReadOnlyList<string> drafters, SpeculativeBenchmarkOptions o,
        ModelOptions? modelOptions = null, IProgress<string>? progress = null)
    {
        var prompts = data.Records.Select(r => GreedyAgreement.PromptOf(target, r, o.PromptTokens))
            .Where(p => p.Count + o.MaxTokens <= target.Config.ContextLength).Take(o.Prompts + 1).ToList();
        if (prompts.Count < 2) throw SioException.InFile(data.Path, "fewer than two prompts leave room for the requested tokens within the context");
        var options = new GenerationOptions { MaxTokens = o.MaxTokens, Speculative = new SpeculativeOptions { DraftTokens = o.DraftTokens } };
        var names = drafters.Contains("none") ? drafters.Distinct().ToList() : ["none", .. drafters.Distinct()];
        var created = new List<IDrafter?>();
        try
        {
            foreach (var name in names)
                created.Add(DrafterFactory.Create(new SpeculativeOptions { Drafter = name, DraftTokens = o.DraftTokens }.Validate(), target, modelOptions, progress));
            var outputs = names.Select(_ => new List<IReadOnlyList<int>>()).ToArray();
            var stats = names.Select(n => new SpeculativeStats { Drafter = n }).ToArray();
            var tokens = new long[names.Count];
            var seconds = new double[names.Count];
            // Interleaved: every prompt runs under every drafter, in a rotating order, so drift in the
            // machine's speed falls on all of them alike. Prompt 0 is a warm-up.
            for (int i = 0; i < prompts.Count; i++)
            {
                progress?.Report($"prompt {i}/{prompts.Count - 1}");
                for (int j = 0; j < names.Count; j++)
                {
                    int d = (i + j) % names.Count;
                    var r = TextGeneration.Generate(target, prompts[i], options, drafter: created[d]);
                    if (i == 0) continue;
                    outputs[d].Add(r.TokenIds);
                    stats[d] = stats[d].Add(r.Speculative);
                    tokens[d] += Math.Max(0, r.TokenIds.Count - 1);
                    seconds[d] += r.DecodeMs / 1000;
                }
            }
            var results = new List<DrafterResult>();
            double plainRate = tokens[0] / seconds[0];
            for (int d = 0; d < names.Count; d++)
            {
                bool identical = outputs[d].Zip(outputs[0]).All(p => p.First.SequenceEqual(p.Second));
                double tps = seconds[d] > 0 ? tokens[d] / seconds[d] : 0;
                results.Add(new DrafterResult(names[d], outputs[d].Count, tokens[d], seconds[d], tps, tps / plainRate, identical, stats[d]));
            }
            return results;
        }
        finally
        {
            foreach (var d in created) d?.Dispose();
        }
    }
}
