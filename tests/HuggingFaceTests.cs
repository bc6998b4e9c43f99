using Sio.Generation;
using Sio.Models;
using Sio.Tokenization;

namespace Sio.Tests;

/// <summary>stories260K exported as a Hugging Face folder and imported back gives the same model.</summary>
[Collection("stories260K")]
[Trait("Category", "e2e")]
public class HuggingFaceTests(Stories260KFixture stories)
{
    static float[][] LogitsOf(string modelDir, IReadOnlyList<int> ids)
    {
        using var model = Model.Load(modelDir);
        using var g = new Generator(model);
        g.AppendTokens(ids.ToArray());
        return Enumerable.Range(0, ids.Count).Select(i => g.Logits(i).ToArray()).ToArray();
    }

    static void AssertClose(float[][] expected, float[][] actual, float tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int p = 0; p < expected.Length; p++)
            for (int i = 0; i < expected[p].Length; i++)
                Assert.True(Math.Abs(expected[p][i] - actual[p][i]) < tolerance, $"position {p} logit {i}: {actual[p][i]} vs {expected[p][i]}");
    }

    [Theory]
    [InlineData("F32", 1)]
    [InlineData("F32", 3)]
    public void RoundTripGivesTheSameLogits(string dtype, int shards)
    {
        var dir = TestPaths.TempDir("hf");
        try
        {
            var hf = Path.Combine(dir, "hf");
            using (var ckpt = new Llama2cCheckpoint(TestPaths.Stories260K))
                HuggingFaceExporter.Export(ckpt, hf, dtype, shards, SentencePieceBpeTokenizer.FromLlama2c(TestPaths.Tok512, 512));
            Assert.True(File.Exists(Path.Combine(hf, "config.json")));
            Assert.Equal(shards == 1, File.Exists(Path.Combine(hf, "model.safetensors")));

            var imported = Path.Combine(dir, "imported");
            var manifest = ModelImporter.Import(new ImportRequest { Source = hf }, imported);
            Assert.False(manifest.Config.RotaryInterleaved);
            Assert.Equal("tokenizer.json", manifest.Tokenizer.Format);

            using var original = Model.Load(stories.ModelDir);
            var ids = original.Tokenizer.Encode("Once upon a time, there was a little girl named Lily. She loved to play");
            AssertClose(LogitsOf(stories.ModelDir, ids), LogitsOf(imported, ids), 1e-4f);
            using var reimported = Model.Load(imported);
            Assert.Equal(ids, reimported.Tokenizer.Encode("Once upon a time, there was a little girl named Lily. She loved to play"));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void MistralFolderWithSentencePieceModelImports()
    {
        var dir = TestPaths.TempDir("mistral");
        try
        {
            var hf = Path.Combine(dir, "hf");
            using (var ckpt = new Llama2cCheckpoint(TestPaths.Stories260K))
                HuggingFaceExporter.Export(ckpt, hf);
            var config = Path.Combine(hf, "config.json");
            File.WriteAllText(config, File.ReadAllText(config).Replace("LlamaForCausalLM", "MistralForCausalLM").Replace("\"hidden_act\"", "\"sliding_window\": 4096, \"hidden_act\""));
            Reference.SentencePieceModelWriter.Write(SentencePieceBpeTokenizer.FromLlama2c(TestPaths.Tok512, 512), Path.Combine(hf, "tokenizer.model"));
            var imported = Path.Combine(dir, "imported");
            var manifest = ModelImporter.Import(new ImportRequest { Source = hf }, imported);
            Assert.Equal("MistralForCausalLM", manifest.Architecture);
            Assert.Equal("tokenizer.model", manifest.Tokenizer.Format);
            using var model = Model.Load(imported);
            var ids = model.Tokenizer.Encode("Once upon a time, there was a little girl");
            Assert.Equal([1, 403, 407, 261, 378], ids.Take(5));
            AssertClose(LogitsOf(stories.ModelDir, ids), LogitsOf(imported, ids), 1e-4f);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData("F16", 2e-2f)]
    [InlineData("BF16", 2e-1f)]
    public void HalfPrecisionWeightsImportAsTheirFloatValues(string dtype, float tolerance)
    {
        var dir = TestPaths.TempDir("hf16");
        try
        {
            var hf = Path.Combine(dir, "hf");
            using (var ckpt = new Llama2cCheckpoint(TestPaths.Stories260K))
                HuggingFaceExporter.Export(ckpt, hf, dtype);
            using (var st = new SafetensorsFile(Path.Combine(hf, "model.safetensors")))
            using (var ckpt = new Llama2cCheckpoint(TestPaths.Stories260K))
            {
                Assert.Equal(dtype, st.Tensors["model.embed_tokens.weight"].DType);
                var exact = ckpt.Read("embed");
                var read = st.ReadFloats("model.embed_tokens.weight");
                for (int i = 0; i < exact.Length; i++)
                {
                    float expected = dtype == "F16" ? (float)(Half)exact[i] : BitConverter.Int32BitsToSingle(SafetensorsFile.ToBFloat16(exact[i]) << 16);
                    Assert.Equal(expected, read[i]);
                }
            }
            var imported = Path.Combine(dir, "imported");
            ModelImporter.Import(new ImportRequest { Source = hf, Tokenizer = TestPaths.Tok512 }, imported);
            var ids = new List<int> { 1, 403, 407, 261, 378 };
            AssertClose(LogitsOf(stories.ModelDir, ids), LogitsOf(imported, ids), tolerance);
        }
        finally { Directory.Delete(dir, true); }
    }
}
