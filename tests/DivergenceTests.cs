using System.Text.Json.Nodes;
using Sio.Evaluation;
using Sio.Generation;
using Sio.Models;
using Sio.Pipeline;
using Sio.Quantization;

namespace Sio.Tests;

/// <summary>
/// Quality as llama.cpp measures it: the KL divergence of a model's next-token distributions from the float original's,
/// the same-top-token rate and both perplexities on the same tokens, on real ONNX Runtime sessions of stories260K and
/// its int4 copy; and the gate that holds a variant to them.
/// </summary>
[Collection("stories260K")]
public class DivergenceTests(Stories260KFixture stories)
{
    static Dataset Data => DatasetReader.Read(TestPaths.TinyStoriesDev, 24);

    [Fact]
    public void AModelAgainstItselfDivergesByNothing()
    {
        using var model = Model.Load(stories.ModelDir);
        var d = Divergence.Compare(model, model, Data, maxTokensPerRecord: 128);
        Assert.Equal(0, d.MeanKld);
        Assert.Equal(0, d.MaxKld);
        Assert.Equal(1, d.SameTopToken);
        Assert.Equal(d.ReferencePerplexity, d.Perplexity);
        Assert.Equal(Perplexity.Evaluate(model, Data, 128).Perplexity, d.Perplexity, 4);
    }

    [Fact]
    public void Int4WeightsDivergeAndTheNumbersAgreeWithAnIndependentComputation()
    {
        var int4 = Path.Combine(stories.Root, "kld-rtn");
        if (!Directory.Exists(int4)) Quantizer.Run(stories.ModelDir, int4, new QuantizationConfig { Method = "rtn", GroupSize = 64 });
        using var q = Model.Load(int4);
        using var f = Model.Load(stories.ModelDir);
        var d = Divergence.Compare(q, f, Data, maxTokensPerRecord: 128);
        Assert.True(d.MeanKld > 1e-5, $"int4 weights left the distributions unchanged (KLD {d.MeanKld})");
        Assert.True(d.MeanKld <= d.P99Kld && d.P99Kld <= d.MaxKld);
        Assert.InRange(d.SameTopToken, 0.5, 0.9999);
        // both perplexities are each model's own teacher-forced perplexity on the same tokens
        Assert.Equal(Perplexity.Evaluate(q, Data, 128).Perplexity, d.Perplexity, 4);
        Assert.Equal(Perplexity.Evaluate(f, Data, 128).Perplexity, d.ReferencePerplexity, 4);

        // the mean KL divergence, recomputed in single precision from softmax probabilities (not log-probabilities)
        var records = Data.Records;
        using var gq = new Generator(q, 128);
        using var gf = new Generator(f, 128);
        double sum = 0;
        long n = 0, same = 0;
        foreach (var r in records)
        {
            var (ids, first) = Perplexity.Tokens(f, r, 128);
            if (ids.Count <= first) continue;
            gq.RewindTo(0); gf.RewindTo(0);
            gq.AppendTokens([.. ids]); gf.AppendTokens([.. ids]);
            for (int i = first; i < ids.Count; i++)
            {
                var (p, qq) = (Softmax(gf.Logits(i - 1)), Softmax(gq.Logits(i - 1)));
                float kl = 0;
                for (int j = 0; j < p.Length; j++) if (p[j] > 0) kl += p[j] * MathF.Log(p[j] / qq[j]);
                sum += kl;
                n++;
                if (Array.IndexOf(p, p.Max()) == Array.IndexOf(qq, qq.Max())) same++;
            }
        }
        Assert.Equal(d.Tokens, n);
        Assert.Equal(sum / n, d.MeanKld, 4);
        Assert.Equal((double)same / n, d.SameTopToken, 3);
    }

    static float[] Softmax(ReadOnlySpan<float> logits)
    {
        var e = new float[logits.Length];
        float max = float.NegativeInfinity;
        foreach (var l in logits) max = MathF.Max(max, l);
        float s = 0;
        for (int i = 0; i < e.Length; i++) s += e[i] = MathF.Exp(logits[i] - max);
        for (int i = 0; i < e.Length; i++) e[i] /= s;
        return e;
    }

    [Fact]
    public void AnotherVocabularyIsRefusedByName()
    {
        var aidreams = Path.Combine(stories.Root, "kld-aidreams");
        if (!Directory.Exists(aidreams)) ModelImporter.Import(new ImportRequest { Source = TestPaths.AiDreams }, aidreams);
        using var a = Model.Load(aidreams);
        using var s = Model.Load(stories.ModelDir);
        var e = Assert.Throws<SioException>(() => Divergence.Compare(a, s, Data));
        Assert.Contains("vocabulary differs", e.Message);
    }

    [Fact]
    public void TheGateHoldsAVariantToItsDivergence()
    {
        LevelMeasurement Level(double tpot) => new(1, 100, 5, tpot, tpot, 0.01, 0, tpot);
        var artifact = new ModelArtifact("k", "m", "int4", 1, false);
        var baseline = new VariantMeasurement("baseline", artifact, "none", [Level(2)], 3.0, null, null, "cpu", 1, false);
        var close = baseline with { Variant = "close", Levels = [Level(1)], FromBaseline = new BaselineDivergence(0.004, 0.05, 0.97, 1000) };
        var far = baseline with { Variant = "far", Levels = [Level(1)], FromBaseline = new BaselineDivergence(0.2, 3.1, 0.71, 1000) };
        var unmeasured = baseline with { Variant = "unmeasured", Levels = [Level(1)] };
        var gates = new QualityGates { MaxKld = 0.01, MinSameTopToken = 0.9 };
        var decision = QualityGate.Evaluate(baseline, [close, far, unmeasured], gates);
        Assert.True(decision.Checks[0].Passed);
        Assert.Equal(0.004, decision.Checks[0].MeanKld);
        Assert.Equal(["KL divergence 0.2 exceeds the 0.01 allowed", "same top token 71.0 % is under the 90 % required"], decision.Checks[1].Failures);
        Assert.Equal(["no KL divergence was measured", "no same-top-token rate was measured"], decision.Checks[2].Failures);
        Assert.Equal("close", decision.Chosen);
        Assert.Contains(("maxKld", "must be ≥ 0"), (new QualityGates { MaxKld = -1 }).Problems());
        Assert.Contains(("minSameTopToken", "must be between 0 and 1"), (new QualityGates { MinSameTopToken = 90 }).Problems());
    }

    [Fact]
    public void EvalReportsTheDivergenceFromItsBaseline()
    {
        var int4 = Path.Combine(stories.Root, "kld-rtn-eval");
        if (!Directory.Exists(int4)) Quantizer.Run(stories.ModelDir, int4, new QuantizationConfig { Method = "rtn" });
        var (exit, output, err) = CliTests.Sio("eval", int4, "--dataset", TestPaths.TinyStoriesDev, "--max-records", "16", "--baseline", stories.ModelDir,
            "--agreement-prompts", "4", "--agreement-tokens", "8", "--json");
        Assert.True(exit == 0, err);
        var b = JsonNode.Parse(output)!["baseline"]!;
        Assert.True(b["kld_mean"]!.GetValue<double>() > 0);
        Assert.True(b["kld_p99"]!.GetValue<double>() >= b["kld_mean"]!.GetValue<double>());
        Assert.InRange(b["same_top_token"]!.GetValue<double>(), 0.5, 1);
        var (textExit, text, _) = CliTests.Sio("eval", int4, "--dataset", TestPaths.TinyStoriesDev, "--max-records", "16", "--baseline", stories.ModelDir,
            "--agreement-prompts", "4", "--agreement-tokens", "8");
        Assert.Equal(0, textExit);
        Assert.Matches(@"KL divergence from the baseline: mean [\d.e-]+, p99 [\d.e-]+, max [\d.e-]+ nats per token; same top token \d+\.\d\d %", text);
    }
}
