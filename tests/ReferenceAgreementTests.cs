using Sio.Evaluation;
using Sio.Generation;
using Sio.Models;
using Sio.Tests.Reference;

namespace Sio.Tests;

/// <summary>The ONNX path against the independent llama2.c-math reference.</summary>
[Collection("stories260K")]
[Trait("Category", "e2e")]
public class ReferenceAgreementTests(Stories260KFixture stories)
{
    const string PublishedSample = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball.";

    [Fact]
    public void GreedyFromBosReproducesLlama2cSampleWithReferenceLogits()
    {
        var reference = new ReferenceTransformer(TestPaths.Stories260K);
        using var model = Model.Load(stories.ModelDir);
        using var generator = new Generator(model);
        int token = 1, refToken = 1;
        var ids = new List<int>();
        var refIds = new List<int>();
        float maxDiff = 0;
        for (int pos = 0; pos < 64; pos++)
        {
            generator.AppendTokens([token]);
            var refLogits = reference.Forward(refToken, pos);
            var logits = generator.LastLogits.ToArray();
            for (int i = 0; i < logits.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs(logits[i] - refLogits[i]));
            token = Sampler.ArgMax(logits);
            refToken = ReferenceTransformer.ArgMax(refLogits);
            ids.Add(token);
            refIds.Add(refToken);
        }
        Assert.True(maxDiff < 1e-4f, $"max logit difference {maxDiff}");
        Assert.Equal(refIds, ids);
        var text = model.Tokenizer.Decode(ids, previous: 1);
        Assert.StartsWith(PublishedSample, text);
    }

    [Fact]
    public void GenerateApiStopsAndDecodesLikeTheLoop()
    {
        using var model = Model.Load(stories.ModelDir);
        var streamed = new System.Text.StringBuilder();
        var result = TextGeneration.Generate(model, [1], new GenerationOptions { MaxTokens = 64 }, (_, piece) => streamed.Append(piece));
        Assert.Equal(64, result.TokenIds.Count);
        Assert.StartsWith(PublishedSample, result.Text);
        Assert.Equal(result.Text, streamed.ToString());
    }

    [Fact]
    public void PerplexityOnTinyStoriesAgreesWithReference()
    {
        using var model = Model.Load(stories.ModelDir);
        var data = DatasetReader.Read(TestPaths.TinyStoriesDev);
        var onnx = Perplexity.Evaluate(model, data);

        double nll = 0; long count = 0;
        var reference = new ReferenceTransformer(TestPaths.Stories260K);
        foreach (var r in data.Records)
        {
            var (ids, first) = Perplexity.Tokens(model, r, model.Config.ContextLength);
            var (n, c) = reference.Score(ids, first);
            nll += n; count += c;
        }
        double refPpl = Math.Exp(nll / count);
        Assert.Equal(count, onnx.TokensScored);
        Assert.True(Math.Abs(onnx.Perplexity - refPpl) / refPpl < 0.001, $"onnx {onnx.Perplexity} vs reference {refPpl}");
        Assert.InRange(onnx.Perplexity, 1.5, 20); // a trained model, not noise (uniform would be 512)
    }

    [Theory]
    [InlineData(64, 160, 2, 4, 2, 300, 7)]   // head 16: GroupQueryAttention's fused rotary, grouped KV
    [InlineData(96, 200, 2, 3, 1, 280, 8)]   // head 32: multi-query attention
    [InlineData(48, 128, 2, 6, 3, 270, 9)]   // head 8: separate RotaryEmbedding
    public void OtherShapesAgreeWithReference(int dim, int hidden, int layers, int heads, int kvHeads, int vocab, int seed)
    {
        var dir = TestPaths.TempDir("shape");
        try
        {
            var ckpt = Path.Combine(dir, "model.bin");
            Llama2cWriter.WriteRandom(ckpt, dim, hidden, layers, heads, kvHeads, vocab, 64, seed, shared: seed % 2 == 0);
            ModelImporter.Import(new ImportRequest { Source = ckpt, Tokenizer = TestPaths.Tok512 }, Path.Combine(dir, "m"));
            var reference = new ReferenceTransformer(ckpt);
            using var model = Model.Load(Path.Combine(dir, "m"));
            using var generator = new Generator(model);
            var rng = new Random(seed);
            var ids = Enumerable.Range(0, 20).Select(_ => rng.Next(vocab)).ToArray();
            generator.AppendTokens(ids);
            for (int pos = 0; pos < ids.Length; pos++)
            {
                var expected = reference.Forward(ids[pos], pos);
                var actual = generator.Logits(pos);
                for (int i = 0; i < vocab; i++) Assert.True(Math.Abs(expected[i] - actual[i]) < 1e-4f, $"pos {pos} logit {i}: {actual[i]} vs {expected[i]}");
            }
        }
        finally { Directory.Delete(dir, true); }
    }
}
