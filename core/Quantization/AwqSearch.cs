using System.Numerics.Tensors;

namespace Sio.Quantization;

/// <summary>
/// The two searches of AWQ (Lin et al., MLSys 2024), measured on calibration activations:
/// per group of linears sharing an input, the exponent α of the per-channel scale s = mean|x|^α
/// (normalised by sqrt(max·min); optionally divided by mean|w|^(1−α)) that minimises the group's output error once W·diag(s) is quantized;
/// then per block, the clipping of the block's range (and a refitted scale) that minimises that block's output error.
/// Weights here are (N, K): one row per output, K along the input.
/// </summary>
public static class AwqSearch
{
    public static readonly float[] Alphas = Enumerable.Range(0, 20).Select(i => i * 0.05f).ToArray();
    public static readonly float[] ClipRatios = Enumerable.Range(0, 20).Select(i => 1f - i * 0.45f / 19f).ToArray(); // 1.0 … 0.55

    public sealed record ScaleChoice(float Alpha, float[] Scale, double Error, double RtnError);

    /// <summary>The per-channel scale for α over mean |x|, normalised so that sqrt(max·min) = 1.</summary>
    public static float[] ScaleFor(float[] meanAbs, float alpha)
    {
        var s = meanAbs.Select(m => MathF.Pow(MathF.Max(m, 1e-4f), alpha)).ToArray();
        float norm = MathF.Sqrt(s.Max() * s.Min());
        for (int i = 0; i < s.Length; i++) s[i] /= norm;
        return s;
    }

    /// <summary>Rows the α search measures on (its cost is N·K per row per α; the clip and rounding use every row kept).</summary>
    public const int ScaleSearchRows = 512;

    /// <summary>At most <paramref name="count"/> rows, evenly strided.</summary>
    public static IReadOnlyList<float[]> Subsample(IReadOnlyList<float[]> rows, int count)
    {
        if (rows.Count <= count) return rows;
        double step = (double)rows.Count / count;
        return Enumerable.Range(0, count).Select(i => rows[(int)(i * step)]).ToList();
    }

    /// <param name="weights">Each linear's weight (N, K).</param>
    /// <param name="duo">Divide by mean|w|^(1−α) too (AutoAWQ's duo scaling), which also weighs how large each input channel's weights are.</param>
    public static ScaleChoice SearchScales(IReadOnlyList<(float[] W, int N)> weights, ActivationStats stats, BlockQuantizer q, bool duo)
    {
        var rows = Subsample(stats.Rows, ScaleSearchRows);
        var mean = stats.MeanAbs();
        int k = stats.K;
        ScaleChoice? best = null;
        double rtn = 0;
        foreach (var alpha in Alphas)
        {
            var s = alpha == 0 ? Enumerable.Repeat(1f, k).ToArray() : duo ? DuoScale(mean, weights, alpha) : ScaleFor(mean, alpha);
            double err = 0;
            foreach (var (w, n) in weights)
            {
                var sw = new float[w.Length]; // W·diag(s)
                for (int r = 0; r < n; r++) TensorPrimitives.Multiply(w.AsSpan(r * k, k), s, sw.AsSpan(r * k, k));
                var e = new float[w.Length]; // dequant(W·diag(s))·diag(1/s) − W
                var dq = new float[k];
                int blocks = (k + q.BlockSize - 1) / q.BlockSize;
                for (int r = 0; r < n; r++)
                {
                    for (int g = 0; g < blocks; g++)
                    {
                        int at = g * q.BlockSize, len = Math.Min(q.BlockSize, k - at);
                        q.FakeQuantizeBlock(sw.AsSpan(r * k + at, len), 1f, dq.AsSpan(at, len));
                    }
                    TensorPrimitives.Divide(dq, s, dq);
                    TensorPrimitives.Subtract(dq, w.AsSpan(r * k, k), e.AsSpan(r * k, k));
                }
                err += OutputError(e, n, k, rows);
            }
            if (alpha == 0) rtn = err;
            if (best is null || err < best.Error) best = new ScaleChoice(alpha, s, err, rtn);
        }
        return best! with { RtnError = rtn };
    }

    /// <summary>s = mean|x|^α / mean|w|^(1−α), with |w| normalised per output row, then normalised like <see cref="ScaleFor"/>.</summary>
    public static float[] DuoScale(float[] mean, IReadOnlyList<(float[] W, int N)> weights, float alpha)
    {
        int k = mean.Length;
        var wmean = new float[k];
        long rowsTotal = 0;
        foreach (var (w, n) in weights)
        {
            for (int r = 0; r < n; r++)
            {
                var row = w.AsSpan(r * k, k);
                float m = 0; foreach (var v in row) m = MathF.Max(m, MathF.Abs(v));
                for (int i = 0; i < k; i++) wmean[i] += MathF.Abs(row[i]) / MathF.Max(m, 1e-8f);
            }
            rowsTotal += n;
        }
        var s = new float[k];
        for (int i = 0; i < k; i++) s[i] = MathF.Max(MathF.Pow(MathF.Max(mean[i], 1e-4f), alpha) / (MathF.Pow(wmean[i] / rowsTotal, 1 - alpha) + 1e-4f), 1e-4f);
        float norm = MathF.Sqrt(s.Max() * s.Min());
        for (int i = 0; i < k; i++) s[i] /= norm;
        return s;
    }

    /// <summary>Σ over sample rows x and outputs n of (x · E_n)².</summary>
    public static double OutputError(float[] e, int n, int k, IReadOnlyList<float[]> rows)
    {
        double err = 0;
        for (int r = 0; r < n; r++)
        {
            var en = e.AsSpan(r * k, k);
            foreach (var x in rows)
            {
                float d = TensorPrimitives.Dot(x, en);
                err += d * d;
            }
        }
        return err;
    }

    /// <summary>Per block (N × k_blocks) of a final weight: the chosen scale, zero point and the clip ratio it came from.</summary>
    public sealed record BlockGrid(int KBlocks, float[] Scales, byte[] ZeroPoints, float[] Clip)
    {
        public BlockQuantizer.BlockChoice Choice(BlockQuantizer q) => (row, g, block, codes) =>
        {
            int i = row * KBlocks + g;
            q.Encode(block, Scales[i], ZeroPoints[i], codes);
            return (Scales[i], ZeroPoints[i]);
        };
    }

    /// <summary>Per block of the input, G_g = X_gᵀ X_g over the rows: a block's output error is eᵀ G_g e.</summary>
    public static float[][] BlockGrams(IReadOnlyList<float[]> rows, int k, int bs)
    {
        int blocks = (k + bs - 1) / bs;
        var gram = new float[blocks][];
        Parallel.For(0, blocks, g =>
        {
            int len = Math.Min(bs, k - g * bs);
            var G = new float[len * len];
            foreach (var x in rows)
            {
                var xg = x.AsSpan(g * bs, len);
                for (int i = 0; i < len; i++)
                    TensorPrimitives.MultiplyAdd(xg, xg[i], G.AsSpan(i * len, len), G.AsSpan(i * len, len));
            }
            gram[g] = G;
        });
        return gram;
    }

    /// <summary>
    /// Per block of a final weight (N, K) whose input rows are <paramref name="rows"/>, the scale and zero point with the
    /// lowest block output error: see <see cref="ChooseBlock"/>.
    /// </summary>
    public static BlockGrid SearchBlocks(float[] w, int n, int k, IReadOnlyList<float[]> rows, BlockQuantizer q)
    {
        int bs = q.BlockSize, blocks = (k + bs - 1) / bs;
        var gram = BlockGrams(rows, k, bs);
        var scales = new float[n * blocks];
        var zps = new byte[n * blocks];
        var clip = new float[n * blocks];
        Parallel.For(0, n, r =>
        {
            for (int g = 0; g < blocks; g++)
            {
                int i = r * blocks + g;
                (scales[i], zps[i], clip[i]) = ChooseBlock(w.AsSpan(r * k + g * bs, Math.Min(bs, k - g * bs)), gram[g], q);
            }
        });
        return new BlockGrid(blocks, scales, zps, clip);
    }

    /// <summary>
    /// A block's scale and zero point with the lowest output error (x_g · (w − q(w)))² summed over the rows, which is
    /// eᵀ G e: AWQ's clip search (the range shrunk to 1.0 … 0.55 of its extremes), then (asymmetric) the low and high ends
    /// shrunk separately, then the scale refitted by least squares on the chosen codes (s = cᵀGw / cᵀGc) while that helps.
    /// </summary>
    public static (float Scale, byte ZeroPoint, float Clip) ChooseBlock(ReadOnlySpan<float> block, float[] G, BlockQuantizer q)
    {
        int len = block.Length;
        Span<byte> codes = stackalloc byte[len];
        Span<float> c = stackalloc float[len];
        Span<float> e = stackalloc float[len];
        Span<float> ge = stackalloc float[len];
        double Quadratic(ReadOnlySpan<float> v, Span<float> gv)
        {
            for (int i = 0; i < len; i++) gv[i] = TensorPrimitives.Dot(G.AsSpan(i * len, len), v);
            return TensorPrimitives.Dot(v, gv);
        }
        double Error(ReadOnlySpan<float> w, float scale, byte zp, Span<byte> codes, Span<float> e, Span<float> ge)
        {
            q.Encode(w, scale, zp, codes);
            for (int i = 0; i < w.Length; i++) e[i] = w[i] - (codes[i] - zp) * scale;
            return Quadratic(e, ge);
        }
        double best = double.MaxValue;
        float bestScale = 0, lo = 1, hi = 1;
        byte bestZp = 0;
        foreach (var ratio in ClipRatios) Consider(ratio, ratio, block, codes, e, ge);
        float clip = hi;
        if (!q.Symmetric)
        {
            float h0 = hi;
            foreach (var ratio in ClipRatios) Consider(ratio, h0, block, codes, e, ge);
            float l0 = lo;
            foreach (var ratio in ClipRatios) Consider(l0, ratio, block, codes, e, ge);
        }
        for (int iter = 0; iter < 4; iter++)
        {
            q.Encode(block, bestScale, bestZp, codes);
            for (int i = 0; i < len; i++) c[i] = codes[i] - bestZp;
            double cgc = Quadratic(c, ge);
            double cgw = TensorPrimitives.Dot(block, ge);
            if (!(cgc > 0)) break;
            float scale = (float)(cgw / cgc);
            if (!(scale > 0)) break;
            double err = Error(block, scale, bestZp, codes, e, ge);
            if (err >= best) break;
            best = err; bestScale = scale;
        }
        return (bestScale, bestZp, clip);

        void Consider(float l, float h, ReadOnlySpan<float> w, Span<byte> codes, Span<float> e, Span<float> ge)
        {
            float scale = q.Range(w, l, h, out var zp);
            double err = Error(w, scale, zp, codes, e, ge);
            if (err < best) { best = err; bestScale = scale; bestZp = zp; lo = l; hi = h; }
        }
    }
}
