using System.Numerics.Tensors;

namespace Sio.Quantization;

/// <summary>
/// Rounding that compensates its own error (GPTQ, Frantar et al., ICLR 2023), applied after AWQ's scales and per block:
/// the columns of a weight (N, K) are rounded in order, and each column's rounding error is spread over the columns not yet
/// rounded along the inverse Hessian of the layer's output error, H = XᵀX over the calibration rows (damped 1 % of its mean
/// diagonal). Each block's scale and zero point are chosen when its first column comes up, from the weights as updated so far.
/// AWQ decides how large each channel is; this decides which way each weight rounds. The AWQ paper notes the two combine.
/// </summary>
public static class ErrorCompensatingRounding
{
    public const double Damping = 0.01;

    /// <summary>The rounded weight (exact multiples of each block's scale) and the blocks' scales and zero points.</summary>
    /// <param name="factor">The rows' <see cref="InverseHessianFactor"/>, when linears sharing the rows share it.</param>
    public static (float[] Rounded, AwqSearch.BlockGrid Grid) Apply(float[] weight, int n, int k, IReadOnlyList<float[]> rows, BlockQuantizer q, float[]? factor = null)
    {
        var u = factor ?? InverseHessianFactor(RoundingRefinement.Gram(rows, k), k);
        int bs = q.BlockSize, blocks = (k + bs - 1) / bs;
        var w = (float[])weight.Clone();
        var scales = new float[n * blocks];
        var zps = new byte[n * blocks];
        var clip = new float[n * blocks];
        var grams = AwqSearch.BlockGrams(rows, k, bs);
        Parallel.For(0, n, r =>
        {
            var row = w.AsSpan(r * k, k);
            for (int g = 0; g < blocks; g++)
            {
                int at = g * bs, len = Math.Min(bs, k - at);
                var (scale, zp, ratio) = AwqSearch.ChooseBlock(row.Slice(at, len), grams[g], q);
                scales[r * blocks + g] = scale; zps[r * blocks + g] = zp; clip[r * blocks + g] = ratio;
                for (int j = at; j < at + len; j++)
                {
                    float v = row[j];
                    float dq = (Math.Clamp((int)MathF.Round(v / scale) + zp, 0, q.MaxQ) - zp) * scale;
                    row[j] = dq;
                    float err = (v - dq) / u[j * k + j];
                    if (j + 1 < k)
                        TensorPrimitives.MultiplyAdd(u.AsSpan(j * k + j + 1, k - j - 1), -err, row[(j + 1)..], row[(j + 1)..]);
                }
            }
        });
        return (w, new AwqSearch.BlockGrid(blocks, scales, zps, clip));
    }

    /// <summary>The upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU), row-major K × K, for the Gram matrix XᵀX of the rows
    /// (<see cref="RoundingRefinement.Gram"/>); dead input channels get H_ii = 1.</summary>
    public static float[] InverseHessianFactor(float[] hf, int k)
    {
        var h = new double[k * k];
        for (int i = 0; i < h.Length; i++) h[i] = hf[i];
        double meanDiag = 0;
        for (int i = 0; i < k; i++) meanDiag += h[i * k + i];
        meanDiag /= k;
        for (int i = 0; i < k; i++) { if (h[i * k + i] == 0) h[i * k + i] = 1; h[i * k + i] += Damping * Math.Max(meanDiag, 1e-12); }
        var lu = Cholesky(InvertSpd(h, k), k); // H⁻¹ = Lu Luᵀ, so U = Luᵀ
        var u = new float[k * k];
        for (int i = 0; i < k; i++) for (int j = i; j < k; j++) u[i * k + j] = (float)lu[j * k + i];
        return u;
    }

    /// <summary>The inverse of a symmetric positive definite matrix (K × K, row-major), through its Cholesky factor.</summary>
    public static double[] InvertSpd(double[] a, int k)
    {
        var l = Cholesky(a, k);
        // Y = (L⁻¹)ᵀ, upper: row c of Y is column c of L⁻¹, so every sum below runs along contiguous rows
        var y = new double[k * k];
        for (int i = 0; i < k; i++)
        {
            int at = i * k;
            Parallel.For(0, i + 1, c =>
            {
                double s = i == c ? 1 : 0;
                if (i > c) s -= TensorPrimitives.Dot<double>(l.AsSpan(at + c, i - c), y.AsSpan(c * k + c, i - c));
                y[c * k + i] = s / l[at + i];
            });
        }
        var inv = new double[k * k]; // A⁻¹ = L⁻ᵀ L⁻¹: [i, j] = Σ_{m ≥ max(i, j)} Y[i, m] Y[j, m]
        Parallel.For(0, k, i =>
        {
            for (int j = 0; j <= i; j++)
            {
                double s = TensorPrimitives.Dot<double>(y.AsSpan(i * k + i, k - i), y.AsSpan(j * k + i, k - i));
                inv[i * k + j] = s; inv[j * k + i] = s;
            }
        });
        return inv;
    }

    static double[] Cholesky(double[] a, int k)
    {
        var l = new double[k * k];
        for (int j = 0; j < k; j++)
        {
            var lj = l.AsSpan(j * k, j);
            double d = a[j * k + j] - TensorPrimitives.Dot<double>(lj, lj);
            if (!(d > 0)) throw new SioException("calibration activations are degenerate: a layer's Hessian is not positive definite");
            double ljj = Math.Sqrt(d);
            l[j * k + j] = ljj;
            Parallel.For(j + 1, k, i => l[i * k + j] = (a[i * k + j] - TensorPrimitives.Dot<double>(l.AsSpan(i * k, j), l.AsSpan(j * k, j))) / ljj);
        }
        return l;
    }
}
