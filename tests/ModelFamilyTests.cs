using System.Text.Json.Nodes;
using LLama;
using LLama.Common;
using LLama.Native;
using Sio.Generation;
using Sio.Models;

namespace Sio.Tests;

/// <summary>
/// Model families against llama.cpp (LLamaSharp 0.30), an implementation no one here wrote: a checkpoint of the
/// family's real shape quirks (widths and depths shrunk, random weights, the real tokenizer and vocabulary size) is
/// imported from a Hugging Face folder, exported to GGUF, and llama.cpp's greedy tokens and logits on the same weights
/// are compared with sio's (ONNX Runtime and the native engine) on several prompts. Random weights show exactness only.
/// </summary>
[Trait("Category", "e2e")]
public class ModelFamilyTests
{
    const int Tokens = 24;
    // Absolute, on logits up to ~25. Measured on this checkpoint: 0.02 (0.03 with plain rotary), and 0.38 when the GGUF
    // lacks rope_freqs (llama.cpp then rotates without Llama 3's scaling): the check tells the two apart.
    const float LogitTolerance = 0.1f;

    static readonly string[] Prompts = ["Once upon a time, there was a little robot", "The capital of France is", "def fibonacci(n):\n    "];

    /// <summary>Llama 3.2-1B's quirks: rope_scaling llama3 (factor 32, low 1, high 4, original 8192), theta 500000, tied embeddings, 128,256 tokens.</summary>
    static DecoderConfig Llama32() => new()
    {
        Dim = 64, HiddenDim = 192, Layers = 2, Heads = 4, KvHeads = 2, VocabSize = 128256, ContextLength = 256, HeadSize = 16,
        RopeTheta = 500000f, RopeScaling = new RopeScaling("llama3", 32, 1, 4, 8192), TiedEmbeddings = true,
        BosTokenId = 128000, EosTokenId = 128001, NormEpsilon = 1e-5f,
    };

    /// <summary>Qwen2.5-0.5B's quirks: q/k/v biases, tied embeddings, theta 1,000,000, a padded vocabulary of 151,936.</summary>
    static DecoderConfig Qwen25() => new()
    {
        Dim = 64, HiddenDim = 160, Layers = 2, Heads = 4, KvHeads = 2, VocabSize = 151936, ContextLength = 256,
        RopeTheta = 1000000f, TiedEmbeddings = true, AttentionBias = true, Architecture = "Qwen2ForCausalLM",
        BosTokenId = 151643, EosTokenId = 151645, NormEpsilon = 1e-6f,
    };

    /// <summary>Qwen3's quirks: per-head q/k RMSNorm before rotary, head_dim (32) independent of hidden/heads (16).</summary>
    static DecoderConfig Qwen3() => new()
    {
        Dim = 64, HiddenDim = 192, Layers = 2, Heads = 4, KvHeads = 2, VocabSize = 151936, ContextLength = 256, HeadSize = 32,
        RopeTheta = 1000000f, TiedEmbeddings = true, QkNorm = true, Architecture = "Qwen3ForCausalLM",
        BosTokenId = 151643, EosTokenId = 151645, NormEpsilon = 1e-6f,
    };

    /// <summary>Phi-3-mini's quirks: fused qkv_proj and gate_up_proj, full multi-head attention, 32,064 tokens (Llama 2's SentencePiece vocabulary).</summary>
    static DecoderConfig Phi3() => new()
    {
        Dim = 64, HiddenDim = 160, Layers = 2, Heads = 4, KvHeads = 4, VocabSize = 32064, ContextLength = 256,
        Architecture = "Phi3ForCausalLM", BosTokenId = 1, EosTokenId = 2,
    };

    /// <summary>
    /// Phi-3-mini-128k's quirks on top of Phi-3's: longrope scaling, a short and a long factor per rotary pair (the long
    /// ones up to ~50, as Phi-3's), switching at the original context (shrunk to 256 of 1,024 positions), and cos and sin
    /// scaled by the attention factor √(1 + ln 4 / ln 256) that the two contexts imply.
    /// </summary>
    static DecoderConfig Phi3LongRope() => Phi3() with
    {
        ContextLength = 1024,
        RopeScaling = new RopeScaling("longrope", 4, OriginalContext: 256, AttentionFactor: RopeScaling.LongRopeAttentionFactor(1024, 256),
            ShortFactors: [1.0, 1.01, 1.03, 1.07, 1.12, 1.2, 1.31, 1.45], LongFactors: [1.0, 1.2, 1.9, 3.4, 7.5, 16.0, 31.0, 49.5]),
    };

    /// <summary>
    /// Gemma 3 1B's quirks: √hidden-scaled embeddings, (1 + w) RMSNorms before and after attention and the feed-forward,
    /// per-head q/k norms, tanh-GELU GeGLU, query_pre_attn_scalar, 5 sliding-window layers (rotary base 10,000) to each
    /// global one (base 1,000,000), 262,144 tokens. The window is shrunk to 12 so the prompts cross it.
    /// </summary>
    static DecoderConfig Gemma3() => new()
    {
        Dim = 64, HiddenDim = 192, Layers = 6, Heads = 2, KvHeads = 1, HeadSize = 32, VocabSize = 262144, ContextLength = 256,
        RopeTheta = 1000000f, LocalRopeTheta = 10000f, GlobalLayerEvery = 6, TiedEmbeddings = true, QkNorm = true, SandwichNorms = true,
        EmbeddingScale = 8f, Activation = "gelu_tanh", AttentionScale = 1 / MathF.Sqrt(32), Architecture = "Gemma3ForCausalLM",
        BosTokenId = 2, EosTokenId = 1, NormEpsilon = 1e-6f,
    };

    /// <summary>Gemma 2's quirks: attention scores soft-capped at 50 and logits at 30, sliding-window and global layers alternating, (1 + w) sandwich norms, GeGLU, 256,000 tokens (Gemma 3's vocabulary stands in).</summary>
    static DecoderConfig Gemma2() => new()
    {
        Dim = 64, HiddenDim = 192, Layers = 4, Heads = 2, KvHeads = 1, HeadSize = 32, VocabSize = 262144, ContextLength = 256,
        RopeTheta = 10000f, GlobalLayerEvery = 2, TiedEmbeddings = true, SandwichNorms = true, AttentionSoftcap = 50f, FinalSoftcap = 30f,
        EmbeddingScale = 8f, Activation = "gelu_tanh", AttentionScale = 1 / MathF.Sqrt(32), Architecture = "Gemma2ForCausalLM",
        BosTokenId = 2, EosTokenId = 1, NormEpsilon = 1e-6f,
    };

    /// <summary>Mixtral's quirks: 8 experts, 2 per token (softmax, top 2, renormalized), SwiGLU experts, a 32,000-token SentencePiece vocabulary.</summary>
    static DecoderConfig Mixtral() => new()
    {
        Dim = 64, HiddenDim = 96, Layers = 2, Heads = 4, KvHeads = 2, VocabSize = 32000, ContextLength = 256, RopeTheta = 1000000f,
        Experts = 8, ExpertsPerToken = 2, Architecture = "MixtralForCausalLM", BosTokenId = 1, EosTokenId = 2,
    };

    /// <summary>Qwen3-MoE's quirks: many small experts (16 here, 128 in Qwen3-30B-A3B), 4 per token with norm_topk_prob, q/k norms.</summary>
    static DecoderConfig Qwen3Moe() => new()
    {
        Dim = 64, HiddenDim = 32, Layers = 2, Heads = 4, KvHeads = 2, HeadSize = 32, VocabSize = 151936, ContextLength = 256, RopeTheta = 1000000f,
        Experts = 16, ExpertsPerToken = 4, QkNorm = true, TiedEmbeddings = false, Architecture = "Qwen3MoeForCausalLM",
        BosTokenId = 151643, EosTokenId = 151645, NormEpsilon = 1e-6f,
    };

    public static TheoryData<string, string> Cases => new()
    {
        { "mixtral", "onnx" }, { "mixtral", "native" }, { "qwen3moe", "onnx" }, { "qwen3moe", "native" },
        { "gemma2", "onnx" },
        { "gemma3", "onnx" }, { "gemma3", "native" },
        { "llama3.2", "onnx" }, { "llama3.2", "native" }, { "qwen2.5", "onnx" }, { "qwen2.5", "native" }, { "qwen3", "onnx" }, { "qwen3", "native" },
        { "phi3", "onnx" }, { "phi3", "native" },
        { "phi3-longrope", "onnx" }, { "phi3-longrope", "native" }, { "phi3-longrope-long", "onnx" },
    };

    static (DecoderConfig Config, string[] TokenizerFiles) Family(string family) => family switch
    {
        "llama3.2" => (Llama32(), RealTokenizer("llama3_1")),
        "qwen2.5" => (Qwen25(), RealTokenizer("qwen3")),
        "qwen3" => (Qwen3(), RealTokenizer("qwen3")),
        "gemma3" => (Gemma3(), RealTokenizer("gemma3")),
        "gemma2" => (Gemma2(), RealTokenizer("gemma3")),
        "mixtral" => (Mixtral(), new[] { Path.Combine(TestPaths.RepoRoot, "samples", "llama2-tokenizer-32k", "tokenizer.model") }),
        "qwen3moe" => (Qwen3Moe(), RealTokenizer("qwen3")),
        "phi3" => (Phi3(), new[] { Path.Combine(TestPaths.RepoRoot, "samples", "llama2-tokenizer-32k", "tokenizer.model") }),
        "phi3-longrope" or "phi3-longrope-long" => (Phi3LongRope(), Family("phi3").TokenizerFiles),
        _ => throw new ArgumentException(family),
    };

    static void SetConfig(string hf, string field, int value)
    {
        var path = Path.Combine(hf, "config.json");
        var j = JsonNode.Parse(File.ReadAllText(path))!;
        j[field] = value;
        File.WriteAllText(path, j.ToJsonString());
    }

    static string[] RealTokenizer(string family) =>
        new[] { "tokenizer.json", "tokenizer_config.json" }.Select(f => Path.Combine(NpmReference.ModelFiles(family), f)).ToArray();

    [Theory, MemberData(nameof(Cases))]
    public void GeneratesWhatLlamaCppGenerates(string family, string engine)
    {
        var (config, tokenizerFiles) = Family(family);
        var dir = TestPaths.TempDir("family");
        try
        {
            var hf = Path.Combine(dir, "hf");
            HuggingFaceExporter.Export(new AttentionHeavy(new SyntheticCheckpoint(config, 7)), hf, "BF16");
            foreach (var f in tokenizerFiles) File.Copy(f, Path.Combine(hf, Path.GetFileName(f)));
            if (family is "gemma2" or "gemma3") SetConfig(hf, "sliding_window", 12);
            var modelDir = Path.Combine(dir, "model");
            var manifest = ModelImporter.Import(new ImportRequest { Source = hf }, modelDir);
            Assert.Equal(config.Architecture, manifest.Architecture);
            Assert.Equal(config.RopeScaling, manifest.Config.RopeScaling);
            var gguf = Path.Combine(dir, "model.gguf");
            var (exit, _, err) = CliTests.Sio("export", "gguf", modelDir, "--out", gguf);
            Assert.True(exit == 0, err);
            // longrope: llama.cpp takes the short factors within the original context and the long ones beyond it, for
            // every position; sio switches at the position. In a context of the original length both take the short ones; for
            // the long ones, sio runs the same weights imported with the long factors in both places, llama.cpp its GGUF
            // in the whole context (llama.cpp pads a context to 256 positions, so the original one is 256 here).
            int contextSize = family == "phi3-longrope" ? config.RopeScaling!.OriginalContext : config.ContextLength;
            if (family == "phi3-longrope-long")
            {
                var j = JsonNode.Parse(File.ReadAllText(Path.Combine(hf, "config.json")))!;
                j["rope_scaling"]!["short_factor"] = j["rope_scaling"]!["long_factor"]!.DeepClone();
                File.WriteAllText(Path.Combine(hf, "config.json"), j.ToJsonString());
                var longDir = Path.Combine(dir, "model-long");
                ModelImporter.Import(new ImportRequest { Source = hf }, longDir);
                // sio's own table: the short factors below the original context, the long ones from it on
                float[] Cos(string folder) => Sio.Onnx.OnnxModelFile.ReadFloats(Sio.Onnx.OnnxModelFile.Read(Path.Combine(folder, DecoderGraph.ModelFile)).Graph.Initializer.Single(t => t.Name == "cos_cache"), folder);
                int half = config.HeadDim / 2, original = config.RopeScaling!.OriginalContext;
                var (mixed, allLong) = (Cos(modelDir), Cos(longDir));
                Assert.Equal(allLong.AsSpan(original * half), mixed.AsSpan(original * half));
                Assert.NotEqual(allLong.AsSpan(half, half).ToArray(), mixed.AsSpan(half, half).ToArray());
                modelDir = longDir;
            }

            if (engine == "native" && family is "gemma3")
            {
                // sio's native decoder has no sliding-window attention yet: it refuses by name, and ONNX Runtime runs the model
                var refused = Assert.Throws<SioException>(() => Model.Load(modelDir, new ModelOptions { Engine = engine }));
                Assert.Contains("sliding-window attention", refused.Message);
                return;
            }
            using var model = Model.Load(modelDir, new ModelOptions { Engine = engine });
            // a float32 KV cache, as sio keeps it
            var parameters = new ModelParams(gguf) { ContextSize = (uint)contextSize, GpuLayerCount = 0, Threads = 2, BatchSize = (uint)contextSize, TypeK = GGMLType.GGML_TYPE_F32, TypeV = GGMLType.GGML_TYPE_F32 };
            using var weights = LLamaWeights.LoadFromFile(parameters);
            using var context = weights.CreateContext(parameters);
            foreach (var text in Prompts)
            {
                var prompt = model.Tokenizer.Encode(text);
                Assert.Equal(prompt, context.Tokenize(text, addBos: model.Tokenizer.AddsBos, special: false).Select(t => (int)t));
                var options = new GenerationOptions { MaxTokens = Tokens, IgnoreModelStopTokens = true };
                var sio = TextGeneration.Generate(model, prompt, options).TokenIds;
                var (llamaCpp, worst) = LlamaCppGreedy(context, prompt, sio, model);
                Assert.Equal(sio, llamaCpp);
                Assert.True(worst < LogitTolerance, $"largest logit difference {worst}");
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>
    /// `sio optimize` runs AWQ int4, compile and prompt-lookup speculation stacked on each family's shape, from its
    /// Hugging Face folder with the real tokenizer and chat template: the chat rows of the dataset are prompted through
    /// the template, and the speculative variant's greedy output equals plain decoding (the gate checks it). Random
    /// weights: the gate's perplexity bound is loose, since quality is not what this shows.
    /// </summary>
    [Theory]
    [InlineData("llama3.2"), InlineData("qwen2.5"), InlineData("qwen3"), InlineData("phi3"), InlineData("gemma3"), InlineData("gemma2"), InlineData("mixtral"), InlineData("qwen3moe")]
    public void OptimizeStacksAwqCompileAndSpeculation(string family)
    {
        var (config, tokenizerFiles) = Family(family);
        var root = TestPaths.TempDir("optimize-family");
        try
        {
            var hf = Path.Combine(root, "hf");
            HuggingFaceExporter.Export(new SyntheticCheckpoint(config with { Layers = 1 }, 3), hf, "BF16");
            foreach (var f in tokenizerFiles) File.Copy(f, Path.Combine(hf, Path.GetFileName(f)));
            if (family is "gemma2" or "gemma3") SetConfig(hf, "sliding_window", 12);
            var outDir = Path.Combine(root, "out");
            var (exit, output, err) = CliTests.Sio("optimize", hf, "--dataset", TestPaths.OpenOrcaDev, "--recipe", "awq-int4,compile,speculative:ngram",
                "--gate", "max-perplexity-increase=1000,min-speedup=0.01", "--concurrency", "1", "--requests", "3", "--max-new-tokens", "16",
                "--store", Path.Combine(root, "store"), "--work-dir", Path.Combine(root, "work"), "--out", outDir, "--json");
            Assert.True(exit == 0, err + output);
            var j = JsonNode.Parse(output)!;
            Assert.Equal("awq-int4+compile+speculative:ngram", j["chosen"]!.GetValue<string>());
            var served = ModelManifest.Load(Path.Combine(outDir, "model"));
            Assert.Equal(config.Architecture, served.Architecture);
            Assert.Equal("int4", served.Dtype);
        }
        finally { Directory.Delete(root, true); }
    }

    /// <summary>
    /// Random weights with sharper, stronger attention (q, k, v and o scaled up), so that rotary positions, and so rope
    /// scaling, move the logits well beyond float noise.
    /// </summary>
    sealed class AttentionHeavy(ICheckpoint inner) : ICheckpoint
    {
        public DecoderConfig Config => inner.Config;
        public string Source => inner.Source;
        public float[] Read(string name)
        {
            var w = inner.Read(name);
            float scale = name.Split('.')[^1] switch { "wq" or "wk" => 3f, "wv" or "wo" => 4f, "router" => 8f, _ => 1f }; // a decisive router: near-tied experts would swap on float noise
            if (scale != 1f) for (int i = 0; i < w.Length; i++) w[i] *= scale;
            return w;
        }
        public void Dispose() => inner.Dispose();
    }

    /// <summary>llama.cpp's greedy continuation, and the largest difference between its logits and sio's along sio's own tokens.</summary>
    static (List<int> Tokens, float Worst) LlamaCppGreedy(LLamaContext context, List<int> prompt, IReadOnlyList<int> sioTokens, Model model)
    {
        context.NativeHandle.MemoryClear();
        using var generator = new Generator(model, prompt.Count + sioTokens.Count + 1);
        generator.AppendTokens(prompt.ToArray());
        var batch = new LLamaBatch();
        for (int i = 0; i < prompt.Count; i++) batch.Add(prompt[i], i, LLamaSeqId.Zero, i == prompt.Count - 1);
        var output = new List<int>();
        float worst = 0;
        for (int s = 0; s < sioTokens.Count; s++)
        {
            Assert.Equal(DecodeResult.Ok, context.Decode(batch));
            var logits = context.NativeHandle.GetLogitsIth(batch.TokenCount - 1).ToArray();
            var ours = generator.LastLogits;
            for (int v = 0; v < logits.Length; v++) worst = Math.Max(worst, Math.Abs(logits[v] - ours[v]));
            output.Add(Sampler.ArgMax(logits));
            int next = sioTokens[s]; // teacher-forced on sio's tokens, so one early difference does not hide the rest
            generator.AppendTokens([next]);
            batch.Clear();
            batch.Add(next, prompt.Count + s, LLamaSeqId.Zero, true);
        }
        return (output, worst);
    }
}

/// <summary>Speculative decoding's vocabulary check compares the real tokenizers; bad tokenizer files are errors naming the file.</summary>
[Trait("Category", "e2e")]
public class RealVocabularyTests
{
    static string Import(string root, string name, string family, int vocab, int seed)
    {
        var dir = Path.Combine(root, name);
        var config = new DecoderConfig { Dim = 32, HiddenDim = 64, Layers = 1, Heads = 2, KvHeads = 1, VocabSize = vocab, ContextLength = 128 };
        ModelImporter.Import(new ImportRequest { Synthetic = config, Tokenizer = Path.Combine(NpmReference.ModelFiles(family), "tokenizer.json"), Seed = seed }, dir);
        return dir;
    }

    [Fact]
    public void ADraftOfTheSameVocabularyIsAcceptedAndAnotherFamilysIsRefusedByItsFirstDifferingTokens()
    {
        var root = TestPaths.TempDir("vocab");
        try
        {
            var target = Import(root, "qwen-target", "qwen3", 151936, 1);
            var sameFamily = Import(root, "qwen-draft", "qwen3", 151936, 2);
            var llama = Import(root, "llama-draft", "llama3_1", 151936, 3);
            var (ok, plain, _) = CliTests.Sio("generate", target, "--prompt", "Hello, world", "--max-tokens", "12", "--json");
            var (exit, drafted, err) = CliTests.Sio("generate", target, "--prompt", "Hello, world", "--max-tokens", "12", "--speculative", $"draft:{sameFamily}", "--json");
            Assert.True(ok == 0 && exit == 0, err);
            Assert.Equal(JsonNode.Parse(plain)!["token_ids"]!.ToJsonString(), JsonNode.Parse(drafted)!["token_ids"]!.ToJsonString());
            var (refused, _, why) = CliTests.Sio("generate", target, "--prompt", "Hello", "--max-tokens", "4", "--speculative", $"draft:{llama}");
            Assert.Equal(1, refused);
            Assert.Matches("the vocabularies differ, first at token \\d+: \".+\" in the draft, \".+\" in the target", why);
        }
        finally { Directory.Delete(root, true); }
    }

    [Fact]
    public void MalformedTokenizerFilesAreErrorsNamingTheFileAndTheProblem()
    {
        var dir = TestPaths.TempDir("badtok");
        try
        {
            var file = Path.Combine(dir, "tokenizer.json");
            (string Json, string Problem)[] cases =
            [
                ("{\"model\": ", "not valid JSON"),
                ("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", "unsupported tokenizer model type Unigram"),
                ("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}", "merges[0] \"a b\" names a piece that is not in the vocabulary"),
                ("{\"normalizer\": {\"type\": \"Precompiled\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}", "unsupported normalizer \"Precompiled\""),
                ("{\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}", "unsupported pre_tokenizer \"BertPreTokenizer\""),
                ("{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}, \"behavior\": \"Isolated\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}", "the regex does not compile"),
            ];
            foreach (var (json, problem) in cases)
            {
                File.WriteAllText(file, json);
                var (exit, stdout, err) = CliTests.Sio("tokenize", file, "--text", "a");
                Assert.Equal(1, exit);
                Assert.StartsWith($"error: {file}: ", err);
                Assert.True(err.Contains(problem), err);
                Assert.DoesNotContain("   at ", err);
                Assert.Equal("", stdout);
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void TokenizePrintsIdsPiecesAndTheRenderedChat()
    {
        var files = NpmReference.ModelFiles("qwen3");
        var (exit, output, err) = CliTests.Sio("tokenize", files, "--text", "Hello world", "--json");
        Assert.True(exit == 0, err);
        var j = JsonNode.Parse(output)!;
        Assert.Equal("[9707,1879]", j["ids"]!.ToJsonString());
        Assert.Equal(["Hello", "Ġworld"], j["pieces"]!.AsArray().Select(p => p!.GetValue<string>()));
        var dir = TestPaths.TempDir("chat");
        try
        {
            var chat = Path.Combine(dir, "chat.json");
            File.WriteAllText(chat, """[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]""");
            var (exit2, text, err2) = CliTests.Sio("tokenize", files, "--chat", chat);
            Assert.True(exit2 == 0, err2);
            Assert.StartsWith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", text);
            Assert.Contains("151644 -> '<|im_start|>'", text);
        }
        finally { Directory.Delete(dir, true); }
    }
}
