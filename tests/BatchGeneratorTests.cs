using Sio.Generation;

namespace Sio.Tests;

[Collection("stories260K")]
[Trait("Category", "e2e")]
public class BatchGeneratorTests(Stories260KFixture stories)
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void RowsOfDifferentLengthsDecodeAsIfAlone(bool fusedRotaryShape)
    {
        string dir = stories.ModelDir;
        string? temp = null;
        if (fusedRotaryShape)
        {
            temp = TestPaths.TempDir("batch");
            dir = Path.Combine(temp, "syn");
            Assert.Equal(0, CliTests.Sio("import", "--synthetic", "--dim", "64", "--hidden", "128", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--vocab", "300", "--context", "128", "--out", dir).Exit);
        }
        try
        {
            using var model = Model.Load(dir);
            var prompts = new[] { new[] { 1, 40, 41, 42 }, new[] { 1, 50 }, new[] { 1, 60, 61, 62, 63, 64, 65, 66 } };
            const int steps = 12;
            // each prompt alone, greedy
            var expected = prompts.Select(p =>
            {
                using var g = new Generator(model);
                g.AppendTokens(p);
                var outs = new List<(int Token, float[] Logits)>();
                for (int s = 0; s < steps; s++)
                {
                    int t = Sampler.ArgMax(g.LastLogits);
                    outs.Add((t, g.LastLogits.ToArray()));
                    g.AppendTokens([t]);
                }
                return outs;
            }).ToList();

            // together: rows join at different times, one row stays free throughout
            using var b = new BatchGenerator(model, rows: 4);
            var active = new bool[4];
            var pending = new int[4];
            var got = prompts.Select(_ => new List<(int, float[])>()).ToList();
            int[] joinAt = [0, 3, 5];
            for (int step = 0; step < steps + 6; step++)
            {
                for (int r = 0; r < prompts.Length; r++)
                    if (step == joinAt[r]) { b.Prefill(r, prompts[r]); active[r] = true; pending[r] = -1; }
                for (int r = 0; r < prompts.Length; r++)
                {
                    if (!active[r]) continue;
                    var logits = b.Logits(r).ToArray();
                    int t = Sampler.ArgMax(logits);
                    got[r].Add((t, logits));
                    pending[r] = t;
                    if (got[r].Count == steps) active[r] = false;
                }
                if (active.Any(a => a)) b.Step(pending, active);
            }
            for (int r = 0; r < prompts.Length; r++)
            {
                Assert.Equal(expected[r].Select(x => x.Token), got[r].Select(x => x.Item1));
                for (int s = 0; s < steps; s++)
                    for (int i = 0; i < expected[r][s].Logits.Length; i++)
                        Assert.True(Math.Abs(expected[r][s].Logits[i] - got[r][s].Item2[i]) < 1e-4f, $"row {r} step {s} logit {i}");
            }
        }
        finally { if (temp is not null) Directory.Delete(temp, true); }
    }
}
