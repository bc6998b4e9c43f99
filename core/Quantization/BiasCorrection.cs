using System.Numerics.Tensors;

namespace Sio.Quantization;

/// <summary>
/// Bias correction (Nagel et al., ICCV 2019, for weight quantization): rounding errors that do not average out over the data
/// shift every output of a linear the same way; the bias (W − Q)·mean(x) over the calibration tokens puts the quantized
/// linear's mean output back on the float one's. MatMulNBits adds it in the kernel, so it costs nothing at decode time.
/// </summary>
public static class BiasCorrection
{
    /// <param name="w">The float weight (N, K) as quantized (AWQ's scale applied).</param>
    /// <param name="dq">Its dequantized value (N, K).</param>
    /// <param name="mean">The mean input row (K) over the calibration tokens, as the quantized weight sees it.</param>
    public static float[] For(float[] w, float[] dq, int n, int k, float[] mean)
    {
        var bias = new float[n];
        var e = new float[k];
        for (int r = 0; r < n; r++)
        {
            TensorPrimitives.Subtract(w.AsSpan(r * k, k), dq.AsSpan(r * k, k), e);
            bias[r] = TensorPrimitives.Dot(e, mean);
        }
        return bias;
    }
}
