using Sio.Generation;

namespace Sio.Tests;

/// <summary>Two models give the same logits (within a tolerance) at every position of one text.</summary>
public static class LogitAsserts
{
    public static void SameLogits(Model a, Model b, string text, float tolerance = 1e-4f)
    {
        var ids = a.Tokenizer.Encode(text);
        using var ga = new Generator(a);
        using var gb = new Generator(b);
        ga.AppendTokens(ids.ToArray());
        gb.AppendTokens(ids.ToArray());
        for (int p = 0; p < ids.Count; p++)
        {
            var x = ga.Logits(p);
            var y = gb.Logits(p);
            for (int i = 0; i < x.Length; i++) Assert.True(Math.Abs(x[i] - y[i]) < tolerance, $"position {p} logit {i}: {y[i]} vs {x[i]}");
        }
    }
}
