using System.Numerics.Tensors;

namespace Sio.Quantization;

/// <summary>
/// The two searches of AWQ (Lin et al., MLSys 2024), measured on calibration activations:
/// per group of linears sharing an input, the exponent α of the per-channel scale s = mean|x|^α
/// (normalised by sqrt(max·min); optionally divided by mean|w|^(1−α)) that minimises the group's output error once W·diag(s) is quantized;
/// then per block, the clipping ratio of the block's range that minimises that block's output error.
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

    /// <param name="weights">Each linear's weight (N, K).</param>
    /// <param name="duo">Divide by mean|w|^(1−α) too (AutoAWQ's duo scaling), which also weighs how large each input channel's weights are.</param>
    public static ScaleChoice SearchScales(IReadOnlyList<(float[] W, int N)> weights, ActivationStats stats, BlockQuantizer q, bool duo)
    {
        var rows = stats.Rows;
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

    /// <summary>
    /// Best clip ratio per block (N × k_blocks) of a final weight (N, K) whose input rows are <paramref name="rows"/>:
    /// the block error (x_g · (w − q(w)))² summed over rows is eᵀ G_g e with G_g = X_gᵀ X_g.
    /// </summary>
    public static float[] SearchClip(float[] w, int n, int k, IReadOnlyList<float[]> rows, BlockQuantizer q)
    {
        int bs = q.BlockSize, blocks = (k + bs - 1) / bs;
        int Len(int g) => Math.Min(bs, k - g * bs);
        var gram = new float[blocks][];
        for (int g = 0; g < blocks; g++)
        {
            int len = Len(g);
            var G = new float[len * len];
            foreach (var x in rows)
            {
                var xg = x.AsSpan(g * bs, len);
                for (int i = 0; i < len; i++)
                    TensorPrimitives.MultiplyAdd(xg, xg[i], G.AsSpan(i * len, len), G.AsSpan(i * len, len));
            }
            gram[g] = G;
        }
        var clip = new float[n * blocks];
        Parallel.For(0, n, r =>
        {
            for (int g = 0; g < blocks; g++)
            {
                int len = Len(g);
                var dq = new float[len];
                var e = new float[len];
                var ge = new float[len];
                var block = w.AsSpan(r * k + g * bs, len);
                double bestErr = double.MaxValue;
                float bestRatio = 1f;
                foreach (var ratio in ClipRatios)
                {
                    q.FakeQuantizeBlock(block, ratio, dq);
                    TensorPrimitives.Subtract(block, dq, e);
                    for (int i = 0; i < len; i++) ge[i] = TensorPrimitives.Dot(gram[g].AsSpan(i * len, len), e);
                    double err = TensorPrimitives.Dot(e, ge);
                    if (err < bestErr) { bestErr = err; bestRatio = ratio; }
                }
                clip[r * blocks + g] = bestRatio;
            }
        });
        return clip;
    }
}
