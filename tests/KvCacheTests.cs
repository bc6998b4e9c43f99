using Sio.Generation;

namespace Sio.Tests;

/// <summary>Token-by-token and multi-token steps on top of a past agree with a full recompute; rewinding is exact.</summary>
[Collection("stories260K")]
[Trait("Category", "e2e")]
public class KvCacheTests(Stories260KFixture stories)
{
    static void Close(ReadOnlySpan<float> a, ReadOnlySpan<float> b, string where)
    {
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) < 1e-4f, $"{where}: logit {i} {a[i]} vs {b[i]}");
    }

    [Fact]
    public void StepsOfAnySizeMatchFullRecompute()
    {
        using var model = Model.Load(stories.ModelDir);
        var ids = model.Tokenizer.Encode("Once upon a time, there was a little dog named Max. He liked to run in the park with his friend.");
        using var full = new Generator(model);
        full.AppendTokens(ids.ToArray());

        foreach (var steps in new[] { Enumerable.Repeat(1, ids.Count).ToArray(), new[] { 3, 1, 4, 1, 5, 9, 2, 6 } })
        {
            using var g = new Generator(model);
            int at = 0;
            foreach (var s0 in steps.Concat(Enumerable.Repeat(ids.Count, 1)))
            {
                int s = Math.Min(s0, ids.Count - at);
                if (s <= 0) break;
                g.AppendTokens(ids.GetRange(at, s).ToArray());
                for (int i = 0; i < s; i++) Close(g.Logits(i), full.Logits(at + i), $"steps [{string.Join(",", steps)}] position {at + i}");
                at += s;
            }
            Assert.Equal(ids.Count, g.Length);
        }
    }

    [Fact]
    public void RewindThenAppendDifferentTokensIsExact()
    {
        using var model = Model.Load(stories.ModelDir);
        var a = model.Tokenizer.Encode("The cat sat on the mat and looked at the bird.");
        var b = model.Tokenizer.Encode("The cat sat on the big red ball.");
        int common = 0;
        while (a[common] == b[common]) common++;

        using var fresh = new Generator(model);
        fresh.AppendTokens(b.ToArray());

        using var g = new Generator(model);
        g.AppendTokens(a.ToArray());       // a speculative branch that gets rejected
        g.RewindTo(common);
        g.AppendTokens(b.Skip(common).ToArray());
        for (int i = 0; i < b.Count - common; i++) Close(g.Logits(i), fresh.Logits(common + i), $"position {common + i}");
        Assert.Equal(b, g.Sequence);
    }

    [Fact]
    public void AppendingPastTheCapacityIsAClearError()
    {
        using var model = Model.Load(stories.ModelDir);
        using var g = new Generator(model, capacity: 8);
        g.AppendTokens([1, 403, 407, 261, 378]);
        var e = Assert.Throws<SioException>(() => g.AppendTokens([1, 2, 3, 4]));
        Assert.Contains("capacity of 8", e.Message);
        Assert.Throws<SioException>(() => g.AppendTokens([9999]));
    }
}
