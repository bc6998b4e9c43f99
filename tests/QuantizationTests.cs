using System.Text.Json.Nodes;
using Microsoft.ML.OnnxRuntime;
using Sio.Evaluation;
using Sio.Generation;
using Sio.Onnx;
using Sio.Quantization;
using DT = Onnx.TensorProto.Types.DataType;

namespace Sio.Tests;

[Collection("stories260K")]
[Trait("Category", "e2e")]
public class QuantizationTests(Stories260KFixture stories)
{
    static float[] Random(int n, int seed, float scale = 1f)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1) * scale).ToArray();
    }

    [Theory]
    [InlineData(4, 32, false, 64)]
    [InlineData(4, 32, true, 64)]
    [InlineData(4, 32, false, 172)]   // a last block of 12: padded
    [InlineData(4, 128, false, 256)]
    [InlineData(8, 32, false, 96)]
    public void PackingRoundTripsAgainstTheReferenceDequantization(int bits, int block, bool symmetric, int k)
    {
        const int n = 24;
        var w = Random(n * k, 1);
        var q = new BlockQuantizer(bits, block, symmetric);
        var packed = q.Quantize(w, n, k);
        Assert.Equal(n * ((k + block - 1) / block) * block * bits / 8, packed.B.Length);
        var dq = BlockQuantizer.Dequantize(packed);
        var expected = new float[k];
        for (int r = 0; r < n; r++)
            for (int g = 0; g < k; g += block)
            {
                int len = Math.Min(block, k - g);
                q.FakeQuantizeBlock(w.AsSpan(r * k + g, len), 1f, expected.AsSpan(g, len));
                float scale = packed.Scales[r * packed.KBlocks + g / block];
                for (int i = 0; i < len; i++)
                {
                    Assert.Equal(expected[g + i], dq[r * k + g + i]);
                    Assert.True(Math.Abs(dq[r * k + g + i] - w[r * k + g + i]) <= scale * (symmetric ? 1.0f : 0.51f), $"row {r} col {g + i}");
                }
            }
    }

    [Theory]
    [InlineData(4, 32, false, 0, 64, 48)]
    [InlineData(4, 32, true, 0, 64, 48)]
    [InlineData(4, 32, false, 0, 172, 64)]
    [InlineData(4, 64, false, 0, 128, 40)]
    [InlineData(8, 32, false, 0, 96, 32)]
    public void MatMulNBitsComputesTheDequantizedMatMul(int bits, int block, bool symmetric, int accuracy, int k, int n)
    {
        var w = Random(n * k, 2, 0.5f);
        var q = new BlockQuantizer(bits, block, symmetric);
        var packed = q.Quantize(w, n, k);
        var dir = TestPaths.TempDir("nbits");
        try
        {
            var path = Path.Combine(dir, "m.onnx");
            using (var g = new GraphBuilder(null))
            {
                g.Input("A", DT.Float, 3, k);
                g.Output("Y", DT.Float, 3, n);
                g.Initializer("B", packed.B, DT.Uint8, n, packed.KBlocks, block * bits / 8);
                g.Initializer<float>("scales", packed.Scales, DT.Float, n, packed.KBlocks);
                var inputs = new List<string> { "A", "B", "scales" };
                if (packed.ZeroPoints is not null) { g.Initializer("zp", packed.ZeroPoints, DT.Uint8, n, packed.ZeroPoints.Length / n); inputs.Add("zp"); }
                g.Node("MatMulNBits", inputs.ToArray(), "mm", "com.microsoft", outputNames: ["Y"],
                    attributes: [GraphBuilder.Attr("K", (long)k), GraphBuilder.Attr("N", (long)n), GraphBuilder.Attr("bits", (long)bits),
                        GraphBuilder.Attr("block_size", (long)block), GraphBuilder.Attr("accuracy_level", (long)accuracy)]);
                g.Save(path);
            }
            var a = Random(3 * k, 3);
            using var session = new InferenceSession(path);
            using var input = OrtValue.CreateTensorValueFromMemory(a, [3, k]);
            using var outputs = session.Run(new RunOptions(), ["A"], [input], ["Y"]);
            var y = outputs[0].GetTensorDataAsSpan<float>().ToArray();
            var dq = BlockQuantizer.Dequantize(packed);
            for (int r = 0; r < 3; r++)
                for (int c = 0; c < n; c++)
                {
                    double expected = 0;
                    for (int i = 0; i < k; i++) expected += a[r * k + i] * dq[c * k + i];
                    Assert.True(Math.Abs(expected - y[r * n + c]) < 1e-5 * Math.Max(1, Math.Abs(expected)), $"[{r},{c}] {y[r * n + c]} vs {expected}");
                }
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void AwqScalesUpASalientChannelAndBeatsRtn()
    {
        const int k = 64, n = 48, rows = 256;
        var rng = new Random(5);
        var stats = new ActivationStats(k, rows);
        for (int t = 0; t < rows; t++)
        {
            var x = Enumerable.Range(0, k).Select(i => (float)(rng.NextDouble() * 2 - 1) * (i == 7 ? 100f : 1f)).ToArray();
            stats.Add(x, keep: true);
        }
        var w = Random(n * k, 6, 0.1f);
        var q = new BlockQuantizer(4, 32, false);
        foreach (var duo in new[] { false, true })
        {
            var choice = AwqSearch.SearchScales([(w, n)], stats, q, duo);
            Assert.True(choice.Alpha > 0, $"duo={duo}: α = {choice.Alpha}");
            Assert.True(choice.Error < choice.RtnError * 0.8, $"duo={duo}: AWQ error {choice.Error} vs RTN {choice.RtnError}");
            Assert.True(choice.Scale[7] > choice.Scale.Where((_, i) => i != 7).Max(), "the salient channel gets the largest scale");
        }
    }

    /// <summary>Rows whose channels are correlated (a low-rank mix plus a little noise): what makes error compensation pay.</summary>
    static List<float[]> CorrelatedRows(int count, int k, int seed)
    {
        var rng = new Random(seed);
        var mix = Random(8 * k, seed + 1);
        return Enumerable.Range(0, count).Select(_ =>
        {
            var z = Enumerable.Range(0, 8).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            return Enumerable.Range(0, k).Select(i => 0.3f + Enumerable.Range(0, 8).Sum(j => z[j] * mix[j * k + i]) + 0.05f * (float)(rng.NextDouble() * 2 - 1)).ToArray();
        }).ToList();
    }

    [Fact]
    public void CompensatingRoundingLowersTheOutputErrorAndStaysOnTheGrid()
    {
        const int k = 128, n = 32;
        var rows = CorrelatedRows(1024, k, 11);
        var w = Random(n * k, 12, 0.2f);
        var q = new BlockQuantizer(4, 32, false);
        double Error(BlockQuantizer.Packed p)
        {
            var e = BlockQuantizer.Dequantize(p);
            System.Numerics.Tensors.TensorPrimitives.Subtract(e, w, e);
            return AwqSearch.OutputError(e, n, k, rows);
        }
        double rtn = Error(q.Quantize(w, n, k));
        var nearest = AwqSearch.SearchBlocks(w, n, k, rows, q);
        double clipped = Error(q.Quantize(w, n, k, nearest.Choice(q)));
        var (rounded, grid) = ErrorCompensatingRounding.Apply(w, n, k, rows, q);
        var packed = q.Quantize(rounded, n, k, grid.Choice(q));
        double compensated = Error(packed);
        Assert.True(clipped < rtn, $"clip search {clipped} vs RTN {rtn}");
        Assert.True(compensated < clipped * 0.8, $"compensating rounding {compensated} vs nearest {clipped}");
        // the rounded weights are exactly what the packed tensors stand for
        var dq = BlockQuantizer.Dequantize(packed);
        for (int i = 0; i < w.Length; i++) Assert.True(Math.Abs(dq[i] - rounded[i]) <= 1e-6f * Math.Max(1, Math.Abs(rounded[i])), $"[{i}] {dq[i]} vs {rounded[i]}");
    }

    [Fact]
    public void RefinementLowersTheErrorLeftByCompensationAndStaysOnTheGrid()
    {
        const int k = 96, n = 24; // K not a multiple of 64: a short last block at group size 64
        var rows = CorrelatedRows(768, k, 31);
        var w = Random(n * k, 32, 0.2f);
        var q = new BlockQuantizer(4, 64, false);
        var gram = RoundingRefinement.Gram(rows, k);
        double Error(float[] dq)
        {
            var e = (float[])dq.Clone();
            System.Numerics.Tensors.TensorPrimitives.Subtract(e, w, e);
            return AwqSearch.OutputError(e, n, k, rows);
        }
        var (rounded, grid) = ErrorCompensatingRounding.Apply(w, n, k, rows, q, ErrorCompensatingRounding.InverseHessianFactor(gram, k));
        double compensated = Error(rounded);
        var before = (float[])rounded.Clone();
        RoundingRefinement.Apply(w, rounded, n, k, gram, grid, q);
        double refined = Error(rounded);
        Assert.True(refined < compensated * 0.95, $"refined {refined} vs compensated {compensated}");
        Assert.Contains(Enumerable.Range(0, w.Length), i => rounded[i] != before[i]);
        // every row's error fell or stayed, never rose
        for (int r = 0; r < n; r++)
        {
            var eBefore = new float[k]; var eAfter = new float[k];
            System.Numerics.Tensors.TensorPrimitives.Subtract(before.AsSpan(r * k, k), w.AsSpan(r * k, k), eBefore);
            System.Numerics.Tensors.TensorPrimitives.Subtract(rounded.AsSpan(r * k, k), w.AsSpan(r * k, k), eAfter);
            Assert.True(AwqSearch.OutputError(eAfter, 1, k, rows) <= AwqSearch.OutputError(eBefore, 1, k, rows) * (1 + 1e-4), $"row {r}");
        }
        // what the packed tensors stand for is exactly the refined weight: codes on the grid, the refitted scales stored
        var dq = BlockQuantizer.Dequantize(q.Quantize(rounded, n, k, grid.Choice(q)));
        for (int i = 0; i < w.Length; i++) Assert.True(Math.Abs(dq[i] - rounded[i]) <= 1e-5f * Math.Max(1, Math.Abs(rounded[i])), $"[{i}] {dq[i]} vs {rounded[i]}");
    }

    [Fact]
    public void CenteredGramIsTheScatterAboutTheMean()
    {
        var rows = CorrelatedRows(200, 8, 41);
        // a channel with a large mean and a small spread: subtracting n·μμᵀ from XᵀX in float would cancel to noise
        foreach (var x in rows) x[3] = 1000f + x[3] * 1e-2f;
        var centered = RoundingRefinement.Centered(rows, 8);
        var mean = Enumerable.Range(0, 8).Select(i => rows.Average(x => (double)x[i])).ToArray();
        for (int i = 0; i < 8; i++)
            for (int j = 0; j < 8; j++)
            {
                double expected = rows.Sum(x => (x[i] - mean[i]) * (x[j] - mean[j]));
                Assert.True(Math.Abs(centered[i * 8 + j] - expected) <= 1e-3 * Math.Max(1, Math.Abs(expected)), $"[{i},{j}] {centered[i * 8 + j]} vs {expected}");
            }
    }

    [Fact]
    public void BiasCorrectionPutsTheMeanOutputBackInTheKernel()
    {
        const int k = 64, n = 40, count = 512;
        var rows = CorrelatedRows(count, k, 21);
        var w = Random(n * k, 22, 0.3f);
        var q = new BlockQuantizer(4, 32, false);
        var packed = q.Quantize(w, n, k);
        var mean = new float[k];
        foreach (var x in rows) System.Numerics.Tensors.TensorPrimitives.Add(mean, x, mean);
        System.Numerics.Tensors.TensorPrimitives.Divide(mean, count, mean);
        var bias = BiasCorrection.For(w, BlockQuantizer.Dequantize(packed), n, k, mean);
        var dir = TestPaths.TempDir("bias");
        try
        {
            float[] Run(bool withBias)
            {
                var path = Path.Combine(dir, $"m{withBias}.onnx");
                using (var g = new GraphBuilder(null))
                {
                    g.Input("A", DT.Float, count, k);
                    g.Output("Y", DT.Float, count, n);
                    g.Initializer("B", packed.B, DT.Uint8, n, packed.KBlocks, 16);
                    g.Initializer<float>("scales", packed.Scales, DT.Float, n, packed.KBlocks);
                    g.Initializer("zp", packed.ZeroPoints!, DT.Uint8, n, packed.ZeroPoints!.Length / n);
                    g.Initializer<float>("bias", bias, DT.Float, n);
                    string[] inputs = withBias ? ["A", "B", "scales", "zp", "", "bias"] : ["A", "B", "scales", "zp"];
                    g.Node("MatMulNBits", inputs, "mm", "com.microsoft", outputNames: ["Y"],
                        attributes: [GraphBuilder.Attr("K", (long)k), GraphBuilder.Attr("N", (long)n), GraphBuilder.Attr("bits", 4L), GraphBuilder.Attr("block_size", 32L)]);
                    g.Save(path);
                }
                using var session = new InferenceSession(path);
                using var input = OrtValue.CreateTensorValueFromMemory(rows.SelectMany(r => r).ToArray(), [count, k]);
                using var outputs = session.Run(new RunOptions(), ["A"], [input], ["Y"]);
                var y = outputs[0].GetTensorDataAsSpan<float>().ToArray();
                var m = new float[n];
                for (int t = 0; t < count; t++) System.Numerics.Tensors.TensorPrimitives.Add(m, y.AsSpan(t * n, n), m);
                System.Numerics.Tensors.TensorPrimitives.Divide(m, count, m);
                return m;
            }
            var floatMean = Enumerable.Range(0, n).Select(r => System.Numerics.Tensors.TensorPrimitives.Dot(w.AsSpan(r * k, k), mean)).ToArray();
            {
                // one row at a time must give what the batch gave
                var path = Path.Combine(dir, "m1.onnx");
                using (var g = new GraphBuilder(null))
                {
                    g.Input("A", DT.Float, "m", k);
                    g.Output("Y", DT.Float, "m", n);
                    g.Initializer("B", packed.B, DT.Uint8, n, packed.KBlocks, 16);
                    g.Initializer<float>("scales", packed.Scales, DT.Float, n, packed.KBlocks);
                    g.Initializer("zp", packed.ZeroPoints!, DT.Uint8, n, packed.ZeroPoints!.Length / n);
                    g.Initializer<float>("bias", bias, DT.Float, n);
                    g.Node("MatMulNBits", ["A", "B", "scales", "zp", "", "bias"], "mm", "com.microsoft", outputNames: ["Y"],
                        attributes: [GraphBuilder.Attr("K", (long)k), GraphBuilder.Attr("N", (long)n), GraphBuilder.Attr("bits", 4L), GraphBuilder.Attr("block_size", 32L)]);
                    g.Save(path);
                }
                using var session = new InferenceSession(path);
                float[] RunRows(int m)
                {
                    using var input = OrtValue.CreateTensorValueFromMemory(rows.Take(m).SelectMany(r => r).ToArray(), [m, k]);
                    using var outputs = session.Run(new RunOptions(), ["A"], [input], ["Y"]);
                    return outputs[0].GetTensorDataAsSpan<float>().ToArray();
                }
                var one = RunRows(1);
                var three = RunRows(3);
                for (int c = 0; c < n; c++) Assert.True(Math.Abs(one[c] - three[c]) < 1e-5, $"M=1 {one[c]} vs M=3 {three[c]} at {c}");
            }
            var plain = Run(false);
            var corrected = Run(true);
            double Shift(float[] m) => m.Zip(floatMean, (a, b) => Math.Abs(a - b)).Max();
            Assert.True(Shift(plain) > 1e-3, $"the rounding shifts the mean output: {Shift(plain)}");
            Assert.True(Shift(corrected) < 1e-4, $"corrected mean output off by {Shift(corrected)} (uncorrected {Shift(plain)})");
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void FoldedScalesLeaveTheFloatModelUnchanged()
    {
        var dir = TestPaths.TempDir("fold");
        try
        {
            var folded = Path.Combine(dir, "folded");
            Quantizer.Run(stories.ModelDir, folded, new QuantizationConfig { Method = "awq", Calibration = TestPaths.TinyStoriesDev, CalibrationSamples = 16, FoldOnly = true });
            var report = JsonNode.Parse(File.ReadAllText(Path.Combine(folded, QuantizationReport.FileName)))!;
            var folds = report["layers"]!.AsArray().Select(l => l!["fold"]!.GetValue<string>()).ToList();
            Assert.Contains(folds, f => f.StartsWith("norm:"));
            Assert.Contains(folds, f => f.StartsWith("producer:"));
            Assert.Contains(folds, f => f == "mul");
            using var a = Model.Load(stories.ModelDir);
            using var b = Model.Load(folded);
            LogitAsserts.SameLogits(a, b, "Once upon a time, there was a little girl named Lily. She loved to play outside.");
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void LinearsSharingAnInputBecomeOneKernelWithTheSameOutputs()
    {
        var dir = TestPaths.TempDir("fuse");
        try
        {
            var fused = Path.Combine(dir, "fused");
            var separate = Path.Combine(dir, "separate");
            var config = new QuantizationConfig { Method = "awq", Calibration = TestPaths.TinyStoriesDev, CalibrationSamples = 16, LmHead = "int4" };
            Quantizer.Run(stories.ModelDir, fused, config);
            Quantizer.Run(stories.ModelDir, separate, config with { FuseSharedInputs = false });
            int Count(string folder, string op) => OnnxModelFile.Read(Path.Combine(folder, "model.onnx")).Graph.Node.Count(n => n.OpType == op);
            // 5 layers: q/k/v and gate/up fused, o and down alone; the classifier
            Assert.Equal(5 * 4 + 1, Count(fused, "MatMulNBits"));
            Assert.Equal(5 * 2, Count(fused, "Split"));
            Assert.Equal(5 * 7 + 1, Count(separate, "MatMulNBits"));
            Assert.Equal(0, Count(separate, "Split"));
            using var a = Model.Load(separate);
            using var b = Model.Load(fused);
            LogitAsserts.SameLogits(a, b, "Once upon a time, there was a little girl named Lily. She loved to play outside.", 1e-5f);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void QuantizedStoriesStaysCoherentAndAwqBeatsRtn()
    {
        var dir = TestPaths.TempDir("quant");
        try
        {
            var all = File.ReadAllLines(TestPaths.TinyStoriesDev);
            var calibration = Path.Combine(dir, "calibration.jsonl");
            var evaluation = Path.Combine(dir, "evaluation.jsonl");
            File.WriteAllLines(calibration, all.Take(all.Length / 2));
            File.WriteAllLines(evaluation, all.Skip(all.Length / 2).Take(60));
            var rtn = Path.Combine(dir, "rtn");
            var awq = Path.Combine(dir, "awq");
            var rtnReport = Quantizer.Run(stories.ModelDir, rtn, new QuantizationConfig { Method = "rtn" });
            var awqReport = Quantizer.Run(stories.ModelDir, awq, new QuantizationConfig { Method = "awq", Calibration = calibration });
            Assert.Equal(35, awqReport.Layers.Count);
            Assert.InRange(awqReport.Sizes.QuantizedLayersRatio, 0.1, 0.3);
            Assert.True(awqReport.Layers.Average(l => l.OutputError!.Value) < awqReport.Layers.Average(l => l.RtnOutputError!.Value));

            var data = DatasetReader.Read(evaluation);
            double Ppl(string m) { using var model = Model.Load(m); return Perplexity.Evaluate(model, data).Perplexity; }
            double fp32 = Ppl(stories.ModelDir), pRtn = Ppl(rtn), pAwq = Ppl(awq);
            Assert.True(pAwq < pRtn, $"AWQ {pAwq} vs RTN {pRtn} (fp32 {fp32})");
            Assert.True(pAwq - fp32 < 0.75 * (pRtn - fp32), $"AWQ's increase {pAwq - fp32:F4} vs RTN's {pRtn - fp32:F4} (fp32 {fp32:F4})");
            Assert.Equal("compensate", awqReport.Rounding);
            Assert.True(awqReport.BiasCorrection);
            Assert.True(awqReport.Refined);
            Assert.True(pAwq < fp32 * 1.10, $"AWQ {pAwq} vs fp32 {fp32}");

            using var model = Model.Load(awq);
            Assert.Equal("int4", model.Manifest.Dtype);
            var text = TextGeneration.Generate(model, [1], new GenerationOptions { MaxTokens = 40 }).Text;
            Assert.StartsWith("Once upon a time", text);
            Assert.Contains(" she ", " " + text.ToLowerInvariant().Replace(".", " ") + " ");
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void ExternalDataThatLeavesTheModelFolderIsRefused()
    {
        var dir = TestPaths.TempDir("escape");
        try
        {
            var model = Path.Combine(dir, "m");
            Directory.CreateDirectory(model);
            foreach (var f in Directory.GetFiles(stories.ModelDir)) File.Copy(f, Path.Combine(model, Path.GetFileName(f)));
            var onnx = Onnx.OnnxModelFile.Read(Path.Combine(model, "model.onnx"));
            var t = onnx.Graph.Initializer.First(i => i.ExternalData.Count > 0);
            t.ExternalData.First(e => e.Key == "location").Value = "../../etc/passwd";
            Onnx.OnnxModelFile.Write(onnx, Path.Combine(model, "model.onnx"));
            var e = Assert.Throws<SioException>(() => Quantizer.Run(model, Path.Combine(dir, "out"), new QuantizationConfig { Method = "rtn" }));
            Assert.Contains("leaves the model folder", e.Message);
            Assert.False(Directory.Exists(Path.Combine(dir, "out")));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void BadInputIsRefusedAndNothingIsWritten()
    {
        var dir = TestPaths.TempDir("qbad");
        try
        {
            var outDir = Path.Combine(dir, "out");
            void Refused(string problem, params string[] args)
            {
                var (exit, _, err) = CliTests.Sio(["quantize", stories.ModelDir, "--out", outDir, .. args]);
                Assert.Equal(1, exit);
                Assert.Contains(problem, err);
                Assert.False(Directory.Exists(outDir));
                Assert.DoesNotContain(Directory.GetFileSystemEntries(dir), e => Path.GetFileName(e).StartsWith(".out"));
            }
            var empty = Path.Combine(dir, "empty.jsonl");
            File.WriteAllText(empty, "");
            var shortFile = Path.Combine(dir, "short.jsonl");
            File.WriteAllText(shortFile, "{\"text\": \"Once upon a time\"}\n");
            var unknown = Path.Combine(dir, "unknown.jsonl");
            File.WriteAllText(unknown, "{\"title\": \"a\", \"body\": 3}\n{\"foo\": [1,2]}\n");
            Refused("no quantizable MatMul", "--method", "rtn", "--exclude", "*");
            Refused("group size 128 is larger than K = 64", "--method", "rtn", "--group-size", "128");
            Refused("--group-size must be", "--method", "rtn", "--group-size", "48");
            Refused("--method awq needs --calibration", "--method", "awq");
            Refused("the dataset is empty", "--calibration", empty);
            Refused("calibration set too short", "--calibration", shortFile);
            Refused("no usable row", "--calibration", unknown);
            Refused("--search-rows must be ≥ 1", "--calibration", TestPaths.TinyStoriesDev, "--search-rows", "0");
            Refused("--rounding must be nearest or compensate", "--calibration", TestPaths.TinyStoriesDev, "--rounding", "stochastic");
        }
        finally { Directory.Delete(dir, true); }
    }
}
