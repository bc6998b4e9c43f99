using System.Text.Json.Nodes;
using Sio.Generation;
using Sio.Native;
using Sio.Quantization;

namespace Sio.Tests;

/// <summary>sio's own decode step against ONNX Runtime on the same folders, and its kernels against plain arithmetic.</summary>
[Collection("stories260K")]
[Trait("Category", "e2e")]
public class NativeDecoderTests(Stories260KFixture stories)
{
    /// <summary>What the kernels see: x rounded to int8 in groups of 32 (scale amax / 127, ties to even), as floats.</summary>
    static float[] Int8Rounded(float[] x)
    {
        var r = new float[x.Length];
        for (int g = 0; g < x.Length; g += 32)
        {
            int end = Math.Min(g + 32, x.Length);
            float amax = 0;
            for (int i = g; i < end; i++) amax = MathF.Max(amax, MathF.Abs(x[i]));
            float scale = amax / 127f;
            for (int i = g; i < end; i++) r[i] = amax == 0 ? 0 : MathF.Round(x[i] * 127f / amax) * scale;
        }
        return r;
    }

    static void Close(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double tolerance, string where)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance, $"{where}: logit {i} is {actual[i]}, ONNX Runtime's {expected[i]}");
    }

    static unsafe float[] Multiply(BlockQuantizedMatrix m, float[] x)
    {
        using var a = new Int8Activation(x.Length);
        a.Quantize(x);
        var y = new float[m.N];
        fixed (float* p = y) m.Multiply(a, p, 0, m.N);
        return y;
    }

    [Theory]
    [InlineData(4, 32, false, 768, false)]
    [InlineData(4, 32, true, 172, false)]
    [InlineData(4, 64, false, 300, false)]
    [InlineData(4, 128, true, 768, false)]
    [InlineData(4, 32, true, 768, true)]
    [InlineData(4, 64, false, 172, true)]
    [InlineData(8, 32, false, 172, false)]
    [InlineData(8, 64, true, 768, false)]
    [InlineData(8, 32, true, 300, true)]
    [InlineData(8, 128, false, 256, true)]
    public void QuantizedProductIsTheDequantizedWeightTimesTheInt8Input(int bits, int block, bool symmetric, int k, bool bf16Scales)
    {
        const int n = 37;
        var rng = new Random(bits * 1000 + block + k);
        var w = Enumerable.Range(0, n * k).Select(_ => (float)(rng.NextDouble() * 2 - 1) * (rng.Next(8) == 0 ? 3 : 0.2f)).ToArray();
        var x = Enumerable.Range(0, k).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        var bias = Enumerable.Range(0, n).Select(i => i * 0.01f - 0.1f).ToArray();
        var packed = new BlockQuantizer(bits, block, symmetric).Quantize(w, n, k);
        if (bf16Scales) Bf16.Round(packed.Scales);   // kept in 2 bytes: must give the same products
        var dq = BlockQuantizer.Dequantize(packed);
        using var m = new BlockQuantizedMatrix(bits, n, k, block, packed.B, packed.Scales, packed.ZeroPoints ?? [], bias);
        Assert.Equal((long)n * ((k + 127) / 128 * 128 * bits / 8 + Math.Max((k + block - 1) / block, (k + 127) / 128 * 128 / block) * ((bf16Scales ? 2 : 4) + (symmetric ? 0 : 1))), m.Bytes);

        var xq = Int8Rounded(x);
        var y = Multiply(m, x);
        BlockQuantizedMatrix.ForceScalar = true;
        float[] scalar;
        try { scalar = Multiply(m, x); } finally { BlockQuantizedMatrix.ForceScalar = false; }
        for (int r = 0; r < n; r++)
        {
            double exact = bias[r], fromFloat = bias[r], magnitude = 0;
            for (int i = 0; i < k; i++) { exact += dq[r * k + i] * xq[i]; fromFloat += dq[r * k + i] * x[i]; magnitude += Math.Abs(dq[r * k + i] * x[i]); }
            Assert.True(Math.Abs(y[r] - exact) <= 1e-4 * magnitude + 1e-5, $"row {r}: kernel {y[r]}, dequantized weight × int8 input {exact}");
            Assert.True(Math.Abs(scalar[r] - exact) <= 1e-4 * magnitude + 1e-5, $"row {r}: scalar {scalar[r]}, expected {exact}");
            Assert.True(Math.Abs(y[r] - fromFloat) <= 0.02 * magnitude, $"row {r}: int8 input moved the product from {fromFloat} to {y[r]}");
        }
    }

    [Fact]
    public void Fp32DecodeStepsEqualOnnxRuntimeAndShareItsCache()
    {
        using var onnx = Model.Load(stories.ModelDir);
        using var native = Model.Load(stories.ModelDir, new ModelOptions { Engine = "native" });
        Assert.StartsWith("native (fp32 ×", native.Engine);
        Assert.Equal("onnx", onnx.Engine);
        using var a = new Generator(onnx, 128);
        using var b = new Generator(native, 128);
        var prompt = onnx.Tokenizer.Encode("Once upon a time, there was a little girl who").ToArray();
        a.AppendTokens(prompt);
        b.AppendTokens(prompt);   // prefilled by ONNX Runtime into the cache the native steps continue
        for (int i = 0; i < 40; i++)
        {
            int next = Sampler.ArgMax(a.LastLogits);
            a.AppendTokens([next]);
            b.AppendTokens([next]);
            Close(a.LastLogits, b.LastLogits, 1e-3, $"step {i}");
        }
        // ONNX Runtime reads the keys and values the native steps wrote: a two-token append on top agrees too
        int[] more = [Sampler.ArgMax(a.LastLogits), 42];
        a.AppendTokens(more);
        b.AppendTokens(more);
        for (int i = 0; i < 2; i++) Close(a.Logits(i), b.Logits(i), 1e-3, $"appended token {i}");
        // rewinding drops native steps like any others
        a.RewindTo(prompt.Length + 5);
        b.RewindTo(prompt.Length + 5);
        a.AppendTokens([7]);
        b.AppendTokens([7]);
        Close(a.LastLogits, b.LastLogits, 1e-3, "after rewinding");
    }

    [Fact]
    public void WorkerTeamSplitsRowsAndRecoversFromAFailedPiece()
    {
        using var team = new WorkerTeam(2);
        var seen = new int[1000];
        team.For(1000, 16, (start, end) => { for (int i = start; i < end; i++) Interlocked.Increment(ref seen[i]); });
        Assert.All(seen, v => Assert.Equal(1, v));
        // both workers fail: the caller gets an error, and the next run starts clean
        Assert.ThrowsAny<Exception>(() => team.Run((worker, _) => throw new InvalidOperationException($"worker {worker}")));
        int ran = 0;
        team.Run((_, _) => Interlocked.Increment(ref ran));
        Assert.Equal(2, ran);
        // only a helper fails: its error reaches the caller
        var e = Assert.Throws<AggregateException>(() => team.Run((worker, _) => { if (worker == 1) throw new InvalidOperationException("helper"); }));
        Assert.Equal("helper", e.InnerException!.Message);
    }

    [Fact]
    public void Bf16RoundsToNearestEven()
    {
        float[] x = [1f, -2.5f, 1.00390625f, 1.01171875f, 3.1415927f, 0f, -0f, 1e-30f, 65504f];
        var many = Enumerable.Range(0, 70).Select(i => x[i % x.Length] * (i + 1)).ToArray();   // the vector path and the tail
        var bf = new ushort[many.Length];
        Bf16.From(many, bf);
        for (int i = 0; i < many.Length; i++)
        {
            float back = BitConverter.Int32BitsToSingle(bf[i] << 16);
            Assert.True(Math.Abs(back - many[i]) <= Math.Abs(many[i]) / 256, $"{many[i]} became {back}");
            uint bits = BitConverter.SingleToUInt32Bits(many[i]), low = bits & 0xFFFF, kept = bits >> 16;
            uint expected = low > 0x8000 || (low == 0x8000 && (kept & 1) == 1) ? kept + 1 : kept;
            Assert.Equal(expected, bf[i]);
        }
        // ties: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7 and goes to the even 1; 1 + 3·2^-8 goes up to 1 + 2^-6
        Bf16.From([1.00390625f, 1.01171875f], bf);
        Assert.Equal(0x3F80, bf[0]);
        Assert.Equal(0x3F82, bf[1]);
    }

    [Fact]
    public void WideHeadsHalfSplitRotaryAndGroupedKeysMatchOnnxRuntime()
    {
        // head 64 (the vectorized attention, rotary fused into GroupQueryAttention), two query heads per key head,
        // Hugging Face's half-split rotary, a feed-forward width that is not a whole number of 128-input chunks
        var root = TestPaths.TempDir("native-wide");
        try
        {
            var dir = Path.Combine(root, "syn");
            var config = new Models.DecoderConfig { Dim = 256, HiddenDim = 352, Layers = 2, Heads = 4, KvHeads = 2, VocabSize = 700, ContextLength = 160 };
            Models.ModelImporter.Import(new Models.ImportRequest { Synthetic = config, Seed = 3 }, dir);
            var int4 = Path.Combine(root, "int4");
            Quantizer.Run(dir, int4, new QuantizationConfig { Method = "rtn", AccuracyLevel = 4, GroupSize = 64 });
            foreach (var (folder, tolerance) in new[] { (dir, 1e-3), (int4, 0.1) })
            {
                using var onnx = Model.Load(folder);
                using var native = Model.Load(folder, new ModelOptions { Engine = "native" });
                using var a = new Generator(onnx, 160);
                using var b = new Generator(native, 160);
                int[] prompt = [1, 17, 250, 3, 99, 640, 5];
                a.AppendTokens(prompt);
                b.AppendTokens(prompt);
                Assert.Equal(folder == int4, native.Engine.Contains("bf16 keys/values"));
                for (int i = 0; i < 120; i++)
                {
                    if (i == 60)
                    {
                        // back 30 positions, then three tokens in one ONNX Runtime pass: the native steps after it must read
                        // those entries, not the ones the rewind dropped
                        a.RewindTo(a.Length - 30);
                        b.RewindTo(b.Length - 30);
                        a.AppendTokens([5, 6, 7]);
                        b.AppendTokens([5, 6, 7]);
                        for (int r = 0; r < 3; r++) Close(a.Logits(r), b.Logits(r), tolerance, $"{Path.GetFileName(folder)} verification row {r}");
                    }
                    int next = (i * 37 + 11) % 700;   // teacher-forced tokens: over 100 positions deep
                    a.AppendTokens([next]);
                    b.AppendTokens([next]);
                    Close(a.LastLogits, b.LastLogits, tolerance, $"{Path.GetFileName(folder)} step {i}");
                }
            }
        }
        finally { Directory.Delete(root, true); }
    }

    /// <summary>
    /// A mixture of experts (8 experts, top 2, Mixtral's renormalization; and Qwen3-30B-A3B's 128, top 8, without it):
    /// the native engine runs only the chosen experts, float and int4 (where every expert's gate and up are one fused
    /// kernel that the engine reads rows of; 256 parts, whose split sizes must stay inside model.onnx for ONNX Runtime
    /// to load it), and follows ONNX Runtime's exact decomposition, which runs them all.
    /// </summary>
    [Theory]
    [InlineData(8, 2, true)]
    [InlineData(128, 8, false)]
    public void MixtureOfExpertsDecodesOnlyTheChosenExpertsAndFollowsOnnxRuntime(int experts, int topK, bool normalize)
    {
        var root = TestPaths.TempDir("native-moe");
        try
        {
            var dir = Path.Combine(root, "syn");
            var config = new Models.DecoderConfig
            {
                Dim = 128, HiddenDim = 96, Layers = 2, Heads = 4, KvHeads = 2, VocabSize = 600, ContextLength = 128,
                Experts = experts, ExpertsPerToken = topK, NormalizeExpertWeights = normalize,
            };
            Models.ModelImporter.Import(new Models.ImportRequest { Synthetic = config, Seed = 5 }, dir);
            var int4 = Path.Combine(root, "int4");
            Quantizer.Run(dir, int4, new QuantizationConfig { Method = "rtn", AccuracyLevel = 4, GroupSize = 32 });
            foreach (var folder in new[] { dir, int4 })
            {
                using var onnx = Model.Load(folder);
                using var native = Model.Load(folder, new ModelOptions { Engine = "native" });
                if (folder == int4) Assert.Contains("int4 g32", native.Engine);
                using var a = new Generator(onnx, 128);
                using var b = new Generator(native, 128);
                int[] prompt = [1, 17, 250, 3, 99, 540, 5];
                a.AppendTokens(prompt);
                b.AppendTokens(prompt);
                int agree = 0, steps = 80;
                double worst = 0;
                for (int i = 0; i < steps; i++)
                {
                    int next = (i * 37 + 11) % 600;
                    a.AppendTokens([next]);
                    b.AppendTokens([next]);
                    if (folder == dir) Close(a.LastLogits, b.LastLogits, 1e-3, $"fp32 step {i}");
                    if (Sampler.ArgMax(a.LastLogits) == Sampler.ArgMax(b.LastLogits)) agree++;
                    for (int v = 0; v < 600; v++) worst = Math.Max(worst, Math.Abs(a.LastLogits[v] - b.LastLogits[v]));
                }
                // int4: both engines round activations to int8 (differently in detail), so a token whose router scores two
                // experts nearly alike may go to the other one: the same greedy choices, logits within a few tenths
                Assert.True(agree >= steps - 3, $"{Path.GetFileName(folder)}: greedy agreement {agree}/{steps}");
                Assert.True(worst < 1.0, $"{Path.GetFileName(folder)}: largest logit difference {worst}");
            }
        }
        finally { Directory.Delete(root, true); }
    }

    [Theory]
    [InlineData("rtn", true, 4)]
    [InlineData("awq", false, 4)]
    [InlineData("rtn", true, 8)]
    [InlineData("rtn", true, 4, true)]
    public void QuantizedDecodeFollowsOnnxRuntimeAtAccuracyLevel4(string method, bool symmetric, int bits, bool bf16Scales = false)
    {
        var dir = Path.Combine(stories.Root, $"native-{method}-{symmetric}-{bits}-{bf16Scales}");
        if (!Directory.Exists(dir))
            Quantizer.Run(stories.ModelDir, dir, new QuantizationConfig
            {
                Method = method, Symmetric = symmetric, Bits = bits, AccuracyLevel = 4, LmHead = "int8", Bf16Scales = bf16Scales,
                Calibration = method == "awq" ? TestPaths.TinyStoriesDev : null, CalibrationSamples = 16,
            });
        using var onnx = Model.Load(dir);
        using var native = Model.Load(dir, new ModelOptions { Engine = "native" });
        // five layers of fused q/k/v, o, fused gate/up and down, then the int8 classifier
        var scales = bf16Scales ? " bf16 scales" : "";
        Assert.Contains(bits == 4 ? $"int4 g32{scales} ×20, int8 g32{scales} ×1" : "int8 g32 ×21", native.Engine);
        using var a = new Generator(onnx, 128);
        using var b = new Generator(native, 128);
        var prompt = onnx.Tokenizer.Encode("Lily and Ben went to the park. They saw").ToArray();
        a.AppendTokens(prompt);
        b.AppendTokens(prompt);
        int agree = 0, steps = 60;
        double worst = 0;
        for (int i = 0; i < steps; i++)
        {
            int next = Sampler.ArgMax(a.LastLogits);
            if (Sampler.ArgMax(b.LastLogits) == next) agree++;
            a.AppendTokens([next]);
            b.AppendTokens([next]);
            var la = a.LastLogits;
            var lb = b.LastLogits;
            for (int v = 0; v < la.Length; v++) worst = Math.Max(worst, Math.Abs(la[v] - lb[v]));
        }
        // both quantize activations to int8 per block (rounding differs in detail): the same greedy path, logits within a few tenths
        Assert.True(agree >= steps - 3, $"greedy agreement {agree}/{steps}");
        Assert.True(worst < 1.0, $"largest logit difference {worst}");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void SpeculativeDecodingOnTheNativeEngineEqualsItsPlainDecoding(bool quantized)
    {
        var dir = stories.ModelDir;
        if (quantized)
        {
            dir = Path.Combine(stories.Root, "native-speculative-int4");
            if (!Directory.Exists(dir))
                Quantizer.Run(stories.ModelDir, dir, new QuantizationConfig { Method = "rtn", Symmetric = true, AccuracyLevel = 4, LmHead = "int8" });
        }
        using var model = Model.Load(dir, new ModelOptions { Engine = "native" });
        var prompts = new[] { "Once upon a time, there was a little girl named Lily. She", "The cat sat on the mat. The cat" };
        foreach (var text in prompts)
        {
            var ids = model.Tokenizer.Encode(text);
            var plain = TextGeneration.Generate(model, ids, new GenerationOptions { MaxTokens = 80, IgnoreModelStopTokens = true });
            foreach (var drafter in new[] { "ngram", "datastore" })
            {
                var spec = new Speculative.SpeculativeOptions { Drafter = drafter, DraftTokens = 4 };
                using var d = Speculative.DrafterFactory.Create(spec, model);
                var fast = TextGeneration.Generate(model, ids, new GenerationOptions { MaxTokens = 80, IgnoreModelStopTokens = true, Speculative = spec }, drafter: d);
                Assert.Equal(plain.TokenIds, fast.TokenIds);
                Assert.True(fast.Speculative.Proposed > 0, $"{drafter} proposed nothing");
            }
        }
    }

    [Fact]
    public void GraphsItCannotRunAreRefusedByName()
    {
        var dir = Path.Combine(stories.Root, "native-embedding-int8");
        Quantizer.Run(stories.ModelDir, dir, new QuantizationConfig { Method = "rtn", Embedding = "int8", GroupSize = 32 });
        var e = Assert.Throws<SioException>(() => Model.Load(dir, new ModelOptions { Engine = "native" }));
        Assert.Contains("the native engine cannot run this graph: the embedding is a GatherBlockQuantized", e.Message);
        var bad = Assert.Throws<SioException>(() => Model.Load(stories.ModelDir, new ModelOptions { Engine = "turbo" }));
        Assert.Contains("unknown engine turbo", bad.Message);

        // a block size the kernels do not take is named with its node, and loading twice after a failure still works
        var narrow = Path.Combine(stories.Root, "native-g16");
        Quantizer.Run(stories.ModelDir, narrow, new QuantizationConfig { Method = "rtn", GroupSize = 16, AccuracyLevel = 4 });
        var g16 = Assert.Throws<SioException>(() => Model.Load(narrow, new ModelOptions { Engine = "native" }));
        Assert.Contains("the native engine cannot run this graph", g16.Message);
        Assert.Contains("block size 16", g16.Message);
        Assert.Contains("(use --engine onnx)", g16.Message);

        // disposing twice is harmless; a step after disposal is refused, not a read of freed memory
        var model = Model.Load(stories.ModelDir, new ModelOptions { Engine = "native" });
        var generator = new Generator(model, 16);
        generator.AppendTokens([1, 2]);
        model.Dispose();
        model.Dispose();
        Assert.Throws<ObjectDisposedException>(() => generator.AppendTokens([3]));
    }

    [Fact]
    public void CliGeneratesTheSameGreedyTextAndBenchesBothEngines()
    {
        var onnx = JsonNode.Parse(CliTests.Sio("generate", stories.ModelDir, "--max-tokens", "30", "--json").Out)!;
        var (exit, output, err) = CliTests.Sio("generate", stories.ModelDir, "--max-tokens", "30", "--engine", "native", "--json");
        Assert.True(exit == 0, err);
        var native = JsonNode.Parse(output)!;
        Assert.Equal(onnx["token_ids"]!.ToJsonString(), native["token_ids"]!.ToJsonString());
        Assert.StartsWith("native", native["engine"]!.GetValue<string>());

        (exit, output, err) = CliTests.Sio("bench", "decode", stories.ModelDir, "--engine", "both", "--runs", "1", "--prompt-tokens", "8", "--tokens", "8", "--json");
        Assert.True(exit == 0, err);
        var engines = JsonNode.Parse(output)!["models"]!.AsArray().Select(m => m!["engine"]!.GetValue<string>()).ToList();
        Assert.Equal(2, engines.Count);
        Assert.Equal("onnx", engines[0]);
        Assert.StartsWith("native", engines[1]);

        (exit, _, err) = CliTests.Sio("generate", stories.ModelDir, "--engine", "fast");
        Assert.NotEqual(0, exit);
        Assert.Contains("fast", err);
    }
}
