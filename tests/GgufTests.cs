using LLama;
using LLama.Common;
using LLama.Native;
using Sio.Generation;

namespace Sio.Tests;

/// <summary>The GGUF export runs in llama.cpp (through LLamaSharp) with sio's tokens.</summary>
[Collection("stories260K")]
[Trait("Category", "e2e")]
public class GgufTests(Stories260KFixture stories)
{
    static List<int> LlamaCppGreedy(string gguf, IReadOnlyList<int> prompt, int tokens, out int[] tokenized)
    {
        var parameters = new ModelParams(gguf) { ContextSize = 256, GpuLayerCount = 0, Threads = 2, BatchSize = 256 };
        using var weights = LLamaWeights.LoadFromFile(parameters);
        using var context = weights.CreateContext(parameters);
        tokenized = context.Tokenize("Once upon a time", addBos: true, special: false).Select(t => (int)t).ToArray();
        var batch = new LLamaBatch();
        for (int i = 0; i < prompt.Count; i++) batch.Add(prompt[i], i, LLamaSeqId.Zero, i == prompt.Count - 1);
        var output = new List<int>();
        int pos = prompt.Count;
        for (int s = 0; s < tokens; s++)
        {
            Assert.Equal(DecodeResult.Ok, context.Decode(batch));
            var logits = context.NativeHandle.GetLogitsIth(batch.TokenCount - 1).ToArray();
            int next = Sampler.ArgMax(logits);
            output.Add(next);
            batch.Clear();
            batch.Add(next, pos++, LLamaSeqId.Zero, true);
        }
        return output;
    }

    [Theory]
    [InlineData("f32", 48)]
    [InlineData("q8_0", 8)]
    [InlineData("q4_0", 1)]
    public void LlamaCppRunsTheExportWithSiosTokens(string type, int mustAgree)
    {
        var dir = TestPaths.TempDir("gguf");
        try
        {
            var file = Path.Combine(dir, $"stories260K-{type}.gguf");
            var (exit, _, err) = CliTests.Sio("export", "gguf", stories.ModelDir, "--type", type, "--out", file);
            Assert.True(exit == 0, err);
            using var model = Model.Load(stories.ModelDir);
            var expected = TextGeneration.Generate(model, [1], new GenerationOptions { MaxTokens = 48, IgnoreModelStopTokens = true }).TokenIds;
            var actual = LlamaCppGreedy(file, [1], 48, out var tokenized);
            Assert.Equal([1, 403, 407, 261, 378], tokenized);
            Assert.Equal(expected.Take(mustAgree), actual.Take(mustAgree));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void ExportRefusesQuantizedModelsAndUnknownTypes()
    {
        var (exit, _, err) = CliTests.Sio("export", "gguf", stories.ModelDir, "--type", "q5_k", "--out", Path.Combine(Path.GetTempPath(), "x.gguf"));
        Assert.Equal(1, exit);
        Assert.Contains("--type must be", err);
    }
}
