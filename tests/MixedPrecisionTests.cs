using Sio.Evaluation;
using Sio.Generation;
using Sio.Onnx;
using Sio.Quantization;

namespace Sio.Tests;

/// <summary>Quality-budgeted mixed precision on stories260K: real quantized folders, real ONNX Runtime, KL divergence recomputed independently.</summary>
[Collection("stories260K")]
[Trait("Category", "e2e")]
public class MixedPrecisionTests(Stories260KFixture stories)
{
    static Dataset Evaluation()
    {
        var data = DatasetReader.Read(TestPaths.TinyStoriesDev);
        return data with { Records = data.Records.Where((_, i) => i % 2 == 1).Take(8).ToList() };
    }

    double Kld(string dir, Dataset data)
    {
        using var m = Model.Load(dir);
        using var r = Model.Load(stories.ModelDir);
        return Divergence.Compare(m, r, data, maxTokensPerRecord: 256).MeanKld;
    }

    static Dictionary<string, long> BitsByNode(string dir) => OnnxModelFile.Read(Path.Combine(dir, "model.onnx")).Graph.Node.Where(n => n.OpType == "MatMulNBits")
        .ToDictionary(n => n.Name, n => n.Attribute.Single(a => a.Name == "bits").I);

    [Fact]
    public void ABudgetBetweenAll4AndAll8GetsASizeBetweenThemWithinTheBudget()
    {
        var dir = TestPaths.TempDir("mixed");
        try
        {
            var data = Evaluation();
            var config = new QuantizationConfig { Method = "rtn", LmHead = "int8", AccuracyLevel = 0 };
            // the oracle: the two uniform models, built and measured here independently of the search
            Quantizer.Run(stories.ModelDir, Path.Combine(dir, "all4"), config);
            Quantizer.Run(stories.ModelDir, Path.Combine(dir, "all8"), config with { Bits = 8 });
            double k4 = Kld(Path.Combine(dir, "all4"), data), k8 = Kld(Path.Combine(dir, "all8"), data);
            Assert.True(k8 < k4 / 10, $"8-bit {k8} should be far closer to float than 4-bit {k4}");
            double budget = (k4 + k8) / 2;

            var outDir = Path.Combine(dir, "mixed");
            var r = MixedPrecision.Search(stories.ModelDir, outDir, config, data, budget);
            Assert.InRange(Math.Abs(k4 - r.KldAll4), 0, 1e-5);
            Assert.True(r.Kld <= budget, $"chosen KLD {r.Kld} over the budget {budget}");
            Assert.InRange(Math.Abs(r.Kld - Kld(outDir, data)), 0, 1e-5); // what was written is what was measured
            Assert.InRange(r.Bytes, r.BytesAll4 + 1, r.BytesAll8 - 1);
            Assert.Equal(5, r.Layers.Count);
            Assert.Contains(r.Layers, l => l.Bits == 4);
            Assert.Contains(r.Layers, l => l.Bits == 8);
            Assert.All(r.Layers, l => Assert.NotNull(l.Sensitivity));
            // the 4-bit layers are the least sensitive ones
            Assert.True(r.Layers.Where(l => l.Bits == 4).Max(l => l.Sensitivity) <= r.Layers.Where(l => l.Bits == 8).Min(l => l.Sensitivity));
            // each layer's kernels carry the bits chosen for it (q/k/v and gate/up fused within a layer)
            foreach (var (node, bits) in BitsByNode(outDir).Where(kv => kv.Key.Contains("layers.")))
            {
                int layer = int.Parse(System.Text.RegularExpressions.Regex.Match(node, @"layers\.(\d+)").Groups[1].Value);
                Assert.Equal(r.Layers.Single(l => l.Layer == layer).Bits, bits);
            }
            Assert.True(File.Exists(Path.Combine(outDir, MixedPrecision.FileName)));
            // both engines run it, and agree on the greedy text
            using var onnx = Model.Load(outDir);
            using var native = Model.Load(outDir, new ModelOptions { Engine = "native" });
            var opts = new GenerationOptions { MaxTokens = 32 };
            Assert.Equal(TextGeneration.Generate(onnx, onnx.Tokenizer.Encode("Once upon a time"), opts).TokenIds,
                TextGeneration.Generate(native, native.Tokenizer.Encode("Once upon a time"), opts).TokenIds);
            Assert.DoesNotContain(Directory.GetDirectories(dir), d => Path.GetFileName(d).StartsWith('.')); // no search folders left
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void WhenEven8BitsIsOverTheBudgetTheMostSensitiveLayersStayFloat()
    {
        var dir = TestPaths.TempDir("mixed-float");
        try
        {
            var data = Evaluation();
            var config = new QuantizationConfig { Method = "rtn", LmHead = "fp32", AccuracyLevel = 0 };
            var probe = MixedPrecision.Search(stories.ModelDir, Path.Combine(dir, "probe"), config, data, 1e9); // any budget: all 4-bit
            Assert.All(probe.Layers, l => Assert.Equal(4, l.Bits));
            var r = MixedPrecision.Search(stories.ModelDir, Path.Combine(dir, "out"), config, data, probe.KldAll8 / 3);
            Assert.True(r.Kld <= probe.KldAll8 / 3, $"{r.Kld} over {probe.KldAll8 / 3}");
            var floats = r.Layers.Where(l => l.Bits == 32).ToList();
            Assert.NotEmpty(floats);
            Assert.True(floats.Min(l => l.Sensitivity) >= r.Layers.Where(l => l.Bits == 8).Select(l => l.Sensitivity).DefaultIfEmpty(0).Max());
            Assert.DoesNotContain(BitsByNode(Path.Combine(dir, "out")).Keys, n => floats.Any(f => n.Contains($"layers.{f.Layer}/")));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void BadMixedPrecisionRequestsAreRefused()
    {
        var outDir = Path.Combine(TestPaths.TempDir("mixed-bad"), "out");
        var (exit, _, err) = CliTests.Sio("quantize", stories.ModelDir, "--method", "rtn", "--mixed-kld", "0.01", "--out", outDir);
        Assert.Equal(1, exit);
        Assert.Contains("--mixed-kld needs --eval FILE", err);
        (exit, _, err) = CliTests.Sio("quantize", stories.ModelDir, "--method", "rtn", "--bits", "8", "--mixed-kld", "0.01", "--eval", TestPaths.TinyStoriesDev, "--out", outDir);
        Assert.Equal(1, exit);
        Assert.Contains("starts from 4 bits", err);
        (exit, _, err) = CliTests.Sio("quantize", stories.ModelDir, "--method", "rtn", "--bits", "8", "--eight-bit", "*layers.0/*", "--out", outDir);
        Assert.Equal(1, exit);
        Assert.Contains("with --bits 8 every linear already has 8", err);
        Assert.False(Directory.Exists(outDir));
    }
}
