using System.Text.Json.Nodes;
using Sio.Evaluation;
using Sio.Generation;
using Sio.Quantization;
using Sio.Speculative;

namespace Sio.Tests;

[Collection("stories260K")]
[Trait("Category", "e2e")]
public class SpeculativeTests(Stories260KFixture stories)
{
    /// <summary>Plain greedy decoding, one token per run, with nothing of the speculative machinery.</summary>
    static List<int> PlainGreedy(Model model, IReadOnlyList<int> prompt, int maxTokens)
    {
        using var g = new Generator(model);
        g.AppendTokens(prompt.ToArray());
        var output = new List<int>();
        while (output.Count < maxTokens)
        {
            int next = Sampler.ArgMax(g.LastLogits);
            if (model.StopTokens.Contains(next)) break;
            output.Add(next);
            if (g.Remaining == 0 || output.Count == maxTokens) break;
            g.AppendTokens([next]);
        }
        return output;
    }

    /// <summary>Up to 50 OpenOrca questions that fit the context, and TinyStories openings to make 100.</summary>
    List<List<int>> HundredPrompts(Model model, int maxTokens)
    {
        IEnumerable<List<int>> From(string file) => DatasetReader.Read(file).Records.Select(r => GreedyAgreement.PromptOf(model, r, 24))
            .Where(p => p.Count + maxTokens <= model.Config.ContextLength);
        var prompts = From(TestPaths.OpenOrcaDev).Take(50).ToList();
        prompts.AddRange(From(TestPaths.TinyStoriesDev).Take(100 - prompts.Count));
        return prompts;
    }

    [Fact]
    public void ALookupThatFindsNothingCountsForItsDraftLength()
    {
        // a drafter that never finds anything: each step that asks it costs 30 % more and still emits one token
        var c = new DraftLengthController(null, 8);
        int drafting = 0;
        for (int step = 0; step < 400; step++)
        {
            int k = c.Next();
            c.Observe(k, 1, k == 0 ? 1.0 : 1.3);
            if (step >= 200 && k > 0) drafting++;
        }
        Assert.True(drafting < 20, $"drafting kept on in {drafting} of the last 200 steps");
    }

    [Fact]
    public void ExactnessMarginOfAFloatModelIsAFewRoundingErrors()
    {
        using var model = Model.Load(stories.ModelDir);
        float measured = ExactnessMargin.Measure(model);
        Assert.InRange(measured, 0f, 1e-4f);
        Assert.InRange(ExactnessMargin.For(model), SpeculativeDecoder.TieMargin, 4e-4f);
    }

    [Fact]
    public void EveryDrafterReproducesPlainGreedyOutput()
    {
        const int maxTokens = 100;
        using var model = Model.Load(stories.ModelDir);
        var prompts = HundredPrompts(model, maxTokens);
        Assert.Equal(100, prompts.Count);
        var expected = prompts.Select(p => PlainGreedy(model, p, maxTokens)).ToList();

        var dir = TestPaths.TempDir("drafts");
        try
        {
            var rtn = Path.Combine(dir, "rtn");
            Quantizer.Run(stories.ModelDir, rtn, new QuantizationConfig { Method = "rtn", GroupSize = 16 });
            var configs = new (string Drafter, int? K)[]
            {
                ("ngram", null), ("ngram", 5), ("self-int4", null), ("self-int4", 3), ($"draft:{rtn}", 4),
                ("datastore", null), ($"datastore:{TestPaths.TinyStoriesDev}", 8),
            };
            foreach (var (name, k) in configs)
            {
                var spec = new SpeculativeOptions { Drafter = name, DraftTokens = k };
                using var drafter = DrafterFactory.Create(spec, model);
                var total = new SpeculativeStats();
                for (int i = 0; i < prompts.Count; i++)
                {
                    var r = TextGeneration.Generate(model, prompts[i], new GenerationOptions { MaxTokens = maxTokens, Speculative = spec }, drafter: drafter);
                    Assert.True(expected[i].SequenceEqual(r.TokenIds), $"{name} k={k}: prompt {i} differs from plain greedy decoding");
                    total = total.Add(r.Speculative);
                }
                Assert.True(total.Proposed > 0, $"{name} never drafted");
                Assert.True(total.Accepted > 0, $"{name} never had a draft accepted");
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData("self-int4", 4000)]
    [InlineData("ngram", 3000)]
    public void SpeculativeSamplingFollowsTheTargetDistribution(string drafterName, int trials)
    {
        using var model = Model.Load(stories.ModelDir);
        var prefix = model.Tokenizer.Encode("Once upon a time, there was a little girl. The girl saw a cat. The girl");
        var sampling = new SamplingOptions { Temperature = 1.0f, Seed = 1234 };

        // the target's own distribution of the token after the prefix
        double[] p;
        using (var g = new Generator(model))
        {
            g.AppendTokens(prefix.ToArray());
            p = new Sampler(sampling).Distribution(g.LastLogits).ToArray().Select(v => (double)v).ToArray();
        }

        var spec = new SpeculativeOptions { Drafter = drafterName, DraftTokens = 4 };
        using var drafter = DrafterFactory.Create(spec, model);
        using var decoder = new SpeculativeDecoder(model, drafter, sampling, spec);
        var counts = new int[p.Length];
        for (int t = 0; t < trials; t++)
        {
            decoder.Start(prefix.Take(prefix.Count - 1).ToList(), pending: prefix[^1]);
            counts[decoder.Step(8)[0]]++;
        }
        Assert.True(decoder.Stats.Proposed > 0 && decoder.Stats.Accepted < decoder.Stats.Proposed, "the rejection path was never taken");

        // chi-square over tokens expected at least 5 times, the rest pooled
        double chi = 0, restExpected = 0, restObserved = 0;
        int bins = 0;
        for (int i = 0; i < p.Length; i++)
        {
            double e = p[i] * trials;
            if (e >= 5) { chi += (counts[i] - e) * (counts[i] - e) / e; bins++; }
            else { restExpected += e; restObserved += counts[i]; }
        }
        if (restExpected >= 5) { chi += (restObserved - restExpected) * (restObserved - restExpected) / restExpected; bins++; }
        int df = bins - 1;
        Assert.True(df >= 3, $"only {bins} bins");
        // Wilson–Hilferty: the 0.999 quantile of chi-square with df degrees of freedom
        double z = 3.09, a = 2.0 / (9 * df), critical = df * Math.Pow(1 - a + z * Math.Sqrt(a), 3);
        Assert.True(chi < critical, $"chi-square {chi:F1} ≥ {critical:F1} (df {df}): the speculative samples do not follow the target");
    }

    [Fact]
    public void AnIncompatibleDraftIsRefusedNamingTheFirstMismatch()
    {
        var dir = TestPaths.TempDir("aidreams");
        try
        {
            var draftDir = Path.Combine(dir, "aidreams");
            Models.ModelImporter.Import(new Models.ImportRequest { Source = TestPaths.AiDreams }, draftDir);
            var (exit, _, err) = CliTests.Sio("generate", stories.ModelDir, "--speculative", $"draft:{draftDir}", "--max-tokens", "5");
            Assert.Equal(1, exit);
            Assert.Contains("incompatible", err);
            Assert.Matches("the vocabularies differ, first at token \\d+: \".*\" in the draft, \".*\" in the target", err);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData("0")]
    [InlineData("33")]
    [InlineData("-2")]
    [InlineData("many")]
    public void DraftLengthOutOfRangeIsAClearError(string k)
    {
        var (exit, _, err) = CliTests.Sio("generate", stories.ModelDir, "--speculative", "ngram", "--draft-tokens", k);
        Assert.Equal(1, exit);
        Assert.Contains("--draft-tokens", err);
    }

    [Fact]
    public void UnknownDrafterIsAClearError()
    {
        var (exit, _, err) = CliTests.Sio("generate", stories.ModelDir, "--speculative", "medusa");
        Assert.Equal(1, exit);
        Assert.Contains("--speculative must be", err);
    }

    [Fact]
    public void DraftsThatWouldRunPastTheContextAreClipped()
    {
        using var model = Model.Load(stories.ModelDir);
        var prompt = model.Tokenizer.Encode(string.Join(" ", Enumerable.Repeat("The cat sat on the mat.", 60)));
        prompt = prompt.Take(model.Config.ContextLength - 10).ToList();
        var expected = PlainGreedy(model, prompt, 100);
        foreach (var name in new[] { "ngram", "self-int4" })
        {
            var spec = new SpeculativeOptions { Drafter = name, DraftTokens = 32 };
            using var drafter = DrafterFactory.Create(spec, model);
            var r = TextGeneration.Generate(model, prompt, new GenerationOptions { MaxTokens = 100, Speculative = spec }, drafter: drafter);
            Assert.Equal(expected, r.TokenIds);
            Assert.True(prompt.Count + r.TokenIds.Count <= model.Config.ContextLength);
        }
    }

    [Fact]
    public void ASelfDistilledDatastoreHoldsTheRecordsAndTheModelsContinuations()
    {
        var dir = TestPaths.TempDir("ds");
        try
        {
            var data = Path.Combine(dir, "data.jsonl");
            File.WriteAllLines(data, File.ReadLines(TestPaths.TinyStoriesDev).Take(5));
            var store = Path.Combine(dir, "store.jsonl");
            var (exit, output, err) = CliTests.Sio("datastore", stories.ModelDir, "--dataset", data, "--prefix-tokens", "4,8", "--max-tokens", "24", "--out", store);
            Assert.True(exit == 0, err);
            var rows = File.ReadAllLines(store);
            Assert.Equal(15, rows.Length); // 5 records + 2 continuations each
            using var model = Model.Load(stories.ModelDir);
            var first = DatasetReader.Read(data).Records[0].Text!;
            var opening = model.Tokenizer.Encode(first).Take(5).ToList();
            var continued = TextGeneration.Generate(model, opening, new GenerationOptions { MaxTokens = 24 }).Text;
            Assert.Contains(rows, r => System.Text.Json.Nodes.JsonNode.Parse(r)!["text"]!.GetValue<string>().EndsWith(continued));

            // the model's own continuation is drafted almost whole, and the output is still plain greedy decoding
            var spec = new SpeculativeOptions { Drafter = $"datastore:{store}", DraftTokens = 8 };
            using var drafter = DrafterFactory.Create(spec, model);
            var r = TextGeneration.Generate(model, opening, new GenerationOptions { MaxTokens = 24, Speculative = spec }, drafter: drafter);
            Assert.Equal(continued, r.Text);
            Assert.True(r.Speculative.AcceptanceRate > 0.8, $"acceptance {r.Speculative.AcceptanceRate}");
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void GenerateJsonReportsSpeculativeMetrics()
    {
        var (exit, output, err) = CliTests.Sio("generate", stories.ModelDir, "--prompt", "Once upon a time, there was a cat. The cat", "--max-tokens", "60", "--speculative", "ngram", "--draft-tokens", "4", "--json");
        Assert.True(exit == 0, err);
        var s = JsonNode.Parse(output)!["speculative"]!;
        Assert.Equal("ngram", s["drafter"]!.GetValue<string>());
        Assert.InRange(s["acceptance_rate"]!.GetValue<double>(), 0, 1);
        Assert.True(s["mean_accepted_length"]!.GetValue<double>() >= 1);
        Assert.Equal(s["accepted"]!.GetValue<long>() / (double)Math.Max(1, s["proposed"]!.GetValue<long>()), s["acceptance_rate"]!.GetValue<double>(), 9);
    }
}
