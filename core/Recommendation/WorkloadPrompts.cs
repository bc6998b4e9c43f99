using Sio.Benchmarking;
using Sio.Evaluation;
using Sio.Generation;

namespace Sio.Recommendation;

/// <summary>
/// The prompts and answer lengths of a workload, in the model's tokens. Without input lengths, the dataset's evaluation
/// prompts are used as they are; with them, each prompt is cut from the evaluation records read end to end, at a length
/// drawn from the distribution. Answer lengths are drawn too. Seeded: every candidate gets the same requests.
/// </summary>
public static class WorkloadPrompts
{
    public static BenchmarkPrompts Build(Model model, Dataset data, Workload w)
    {
        int context = model.Config.ContextLength;
        var random = new Random(w.Seed);
        int count = Math.Max(w.Requests, 8);
        if (w.Output.Mean + (w.Input?.Mean ?? 1) >= context)
            throw new SioException($"the workload's prompts ({w.Input?.ToString() ?? "from the dataset"}) and answers ({w.Output} tokens) do not fit the model's context of {context} tokens");
        var answers = Enumerable.Range(0, count).Select(_ => w.Output.Draw(random, context - 2)).ToList();
        var prompts = new List<List<int>>();
        if (w.Input is null)
        {
            var all = LoadBenchmark.Prompts(model, data, new LoadBenchmarkConfig { MaxNewTokens = answers.Max(), PromptTokensMin = 1, PromptTokensMax = int.MaxValue });
            for (int i = 0; i < count; i++) prompts.Add(all.Prompts[i % all.Prompts.Count]);
            return new BenchmarkPrompts(prompts, all.Records, all.SkippedRows, all.OutOfRange) { AnswerTokens = answers };
        }
        var tok = model.Tokenizer;
        var stream = data.Records.SelectMany(r => RecordPrompt.Ids(model, r).Skip(tok.AddsBos ? 1 : 0)).ToList();
        if (stream.Count == 0) throw SioException.InFile(data.Path, "no record has any tokens in this model's tokenizer");
        int offset = 0;
        for (int i = 0; i < count; i++)
        {
            int length = w.Input.Draw(random, context - answers[i] - 1);
            var p = new List<int>(length);
            if (tok.AddsBos) p.Add(tok.BosTokenId);
            while (p.Count < length) { p.Add(stream[offset % stream.Count]); offset++; }
            prompts.Add(p);
        }
        return new BenchmarkPrompts(prompts, data.Records, data.Skipped, 0) { AnswerTokens = answers };
    }
}
