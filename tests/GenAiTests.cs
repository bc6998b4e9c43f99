using Microsoft.ML.OnnxRuntimeGenAI;
using Sio.Generation;

namespace Sio.Tests;

/// <summary>The same model folder runs in ONNX Runtime GenAI 0.18 with identical greedy tokens.</summary>
[Collection("stories260K")]
[Trait("Category", "e2e")]
public class GenAiTests(Stories260KFixture stories)
{
    [Theory]
    [InlineData("")]
    [InlineData("Once upon a time, there was a little dog")]
    public void GenAiGeneratesTheSameGreedyTokens(string prompt)
    {
        using var ours = Sio.Generation.Model.Load(stories.ModelDir);
        var promptIds = ours.Tokenizer.Encode(prompt);
        var expected = TextGeneration.Generate(ours, promptIds, new GenerationOptions { MaxTokens = 48, StopTokens = [] }).TokenIds;

        using var model = new Microsoft.ML.OnnxRuntimeGenAI.Model(stories.ModelDir);
        using var p = new GeneratorParams(model);
        p.SetSearchOption("max_length", promptIds.Count + expected.Count);
        p.SetSearchOption("do_sample", false);
        using var g = new Microsoft.ML.OnnxRuntimeGenAI.Generator(model, p);
        g.AppendTokens(promptIds.ToArray());
        var actual = new List<int>();
        while (!g.IsDone() && actual.Count < expected.Count)
        {
            g.GenerateNextToken();
            actual.Add(g.GetSequence(0)[^1]);
        }
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void GenAiTokenizerReadsTheWrittenTokenizerJson()
    {
        using var ours = Sio.Generation.Model.Load(stories.ModelDir);
        using var model = new Microsoft.ML.OnnxRuntimeGenAI.Model(stories.ModelDir);
        using var tokenizer = new Microsoft.ML.OnnxRuntimeGenAI.Tokenizer(model);
        const string text = "Once upon a time, there was a little girl named Lily.";
        var theirs = tokenizer.Encode(text)[0].ToArray();
        var mine = ours.Tokenizer.Encode(text);
        Assert.Equal(mine.SkipWhile(t => t == 1), theirs.SkipWhile(t => t == 1));
    }
}
