using System.Numerics.Tensors;

namespace Sio.Quantization;

/// <summary>
/// A descent on the layer's output error after <see cref="ErrorCompensatingRounding"/>: GPTQ rounds each column once, in
/// order, and never revisits it. With e = Q − W one output row's error over the calibration rows is eᵀHe (H = XᵀX), and
/// moving one weight by one step d of its block's scale changes it by 2d(He)ⱼ + d²Hⱼⱼ, so each weight in turn moves up or
/// down a code while that lowers the error, and each block's scale is then refitted by least squares against the whole
/// row's error (cross-block terms included). Codes stay on the packing grid; the error never rises.
/// </summary>
public static class RoundingRefinement
{
    /// <summary>Sweeps over a row (each: one pass over the codes, then one over the block scales). The cost of a linear
    /// (N, K) is about (1 + 2·Sweeps)·N·K² multiply-adds, several times GPTQ's: 13 % more quantization time on the 110M model.</summary>
    public const int Sweeps = 4;

    /// <summary>XᵀX over the rows, K × K row-major.</summary>
    public static float[] Gram(IReadOnlyList<float[]> rows, int k)
    {
        var h = new float[k * k];
        Parallel.For(0, k, i =>
        {
            var row = h.AsSpan(i * k, k);
            foreach (var x in rows) if (x[i] != 0) TensorPrimitives.MultiplyAdd(x, x[i], row, row);
        });
        return h;
    }

    /// <summary>The rows' scatter about their mean, Σ(x − μ)(x − μ)ᵀ (= XᵀX − n·μμᵀ): the output error that a bias cannot
    /// remove. Summed from the centered rows, not by subtracting, which would cancel to noise for a channel with a large
    /// mean and a small spread.</summary>
    public static float[] Centered(IReadOnlyList<float[]> rows, int k)
    {
        var mean = new double[k];
        foreach (var x in rows) for (int i = 0; i < k; i++) mean[i] += x[i];
        var mu = mean.Select(m => (float)(m / rows.Count)).ToArray();
        var centered = rows.Select(x => { var y = new float[k]; TensorPrimitives.Subtract(x, mu, y); return y; }).ToList();
        return Gram(centered, k);
    }

    /// <summary>Refines <paramref name="rounded"/> (multiples of the grid's scales, in place) and the grid's scales toward
    /// <paramref name="weight"/> under the Gram matrix <paramref name="h"/>.</summary>
    public static void Apply(float[] weight, float[] rounded, int n, int k, float[] h, AwqSearch.BlockGrid grid, BlockQuantizer q)
    {
        int bs = q.BlockSize, blocks = grid.KBlocks;
        Parallel.For(0, n, r =>
        {
            var w = weight.AsSpan(r * k, k);
            var dq = rounded.AsSpan(r * k, k);
            var e = new float[k];
            var he = new float[k];
            var c = new float[bs];
            var hc = new float[k];
            TensorPrimitives.Subtract(dq, w, e);
            for (int i = 0; i < k; i++) he[i] = TensorPrimitives.Dot(h.AsSpan(i * k, k), e);
            for (int sweep = 0; sweep < Sweeps; sweep++)
            {
                int moved = 0;
                for (int j = 0; j < k; j++)
                {
                    int b = r * blocks + j / bs;
                    float s = grid.Scales[b];
                    int code = (int)MathF.Round(dq[j] / s) + grid.ZeroPoints[b];
                    float hjj = h[j * k + j];
                    if (!(hjj > 0)) continue; // a dead input channel: its weight cannot change the output
                    float best = 0, step = 0;
                    foreach (int dir in (ReadOnlySpan<int>)[1, -1])
                    {
                        if (code + dir < 0 || code + dir > q.MaxQ) continue;
                        float d = dir * s;
                        float change = 2 * d * he[j] + d * d * hjj;
                        if (change < best) { best = change; step = d; }
                    }
                    if (step == 0) continue;
                    dq[j] += step; e[j] += step;
                    TensorPrimitives.MultiplyAdd(h.AsSpan(j * k, k), step, he, he);
                    moved++;
                }
                bool rescaled = false;
                for (int g = 0; g < blocks; g++)
                {
                    int at = g * bs, len = Math.Min(bs, k - at), b = r * blocks + g;
                    float s = grid.Scales[b];
                    for (int i = 0; i < len; i++) c[i] = MathF.Round(dq[at + i] / s);
                    // δ minimises (e + δ·c)ᵀH(e + δ·c) over the block: δ = −cᵀ(He) / cᵀHc
                    hc.AsSpan().Clear();
                    for (int i = 0; i < len; i++) if (c[i] != 0) TensorPrimitives.MultiplyAdd(h.AsSpan((at + i) * k, k), c[i], hc, hc);
                    double chc = TensorPrimitives.Dot<float>(c.AsSpan(0, len), hc.AsSpan(at, len));
                    if (!(chc > 0)) continue;
                    float delta = (float)(-TensorPrimitives.Dot<float>(c.AsSpan(0, len), he.AsSpan(at, len)) / chc);
                    if (!(s + delta > 0) || MathF.Abs(delta) < 1e-7f * s) continue;
                    grid.Scales[b] = s + delta;
                    for (int i = 0; i < len; i++) { dq[at + i] = c[i] * (s + delta); e[at + i] = dq[at + i] - w[at + i]; }
                    TensorPrimitives.MultiplyAdd(hc, delta, he, he);
                    rescaled = true;
                }
                if (moved == 0 && !rescaled) break;
            }
        });
    }
}
