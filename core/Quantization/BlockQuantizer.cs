namespace Sio.Quantization;

/// <summary>
/// Block-wise integer quantization of a weight laid out (N, K): each output row is cut into blocks of
/// <c>BlockSize</c> input elements, and each block gets a scale (and, asymmetric, a zero point).
/// Dequantized value = (q − zp) × scale. Packs into ONNX Runtime's MatMulNBits layout:
/// B uint8 (N, k_blocks, block·bits/8) with element 2j in the low nibble (4 bits),
/// scales float (N, k_blocks), zero points uint8 (N, ceil(k_blocks·bits/8)) packed the same way.
/// When the block size does not divide K, the last block of each row is shorter; its padding codes
/// stand for zero, as the kernel expects.
/// </summary>
public sealed class BlockQuantizer(int bits, int blockSize, bool symmetric)
{
    public int Bits { get; } = bits is 4 or 8 ? bits : throw new SioException($"--bits must be 4 or 8, got {bits}");
    public int BlockSize { get; } = blockSize >= 16 && (blockSize & (blockSize - 1)) == 0 ? blockSize : throw new SioException($"--group-size must be a power of two ≥ 16, got {blockSize}");
    public bool Symmetric { get; } = symmetric;
    public int MaxQ => (1 << Bits) - 1;
    public int DefaultZeroPoint => 1 << (Bits - 1);

    /// <summary>Quantization of one block: codes, scale and zero point, with the range clipped to <paramref name="clip"/> of its extremes.</summary>
    public float QuantizeBlock(ReadOnlySpan<float> w, float clip, Span<byte> q, out byte zeroPoint)
    {
        float scale = Range(w, clip, clip, out zeroPoint);
        Encode(w, scale, zeroPoint, q);
        return scale;
    }

    /// <summary>The scale and zero point of a block whose range is clipped to the given fractions of its extremes.</summary>
    public float Range(ReadOnlySpan<float> w, float clipLow, float clipHigh, out byte zeroPoint)
    {
        float scale;
        int zp;
        if (Symmetric)
        {
            float amax = 0;
            foreach (var v in w) amax = MathF.Max(amax, MathF.Abs(v));
            amax *= clipHigh;
            zp = DefaultZeroPoint;
            scale = amax / (DefaultZeroPoint - 1);
        }
        else
        {
            float min = 0, max = 0; // the range includes 0, so zero stays exact
            foreach (var v in w) { min = MathF.Min(min, v); max = MathF.Max(max, v); }
            min *= clipLow; max *= clipHigh;
            scale = (max - min) / MaxQ;
            zp = scale > 0 ? Math.Clamp((int)MathF.Round(-min / scale), 0, MaxQ) : DefaultZeroPoint;
        }
        if (scale == 0) scale = 1e-12f; // an all-zero block
        zeroPoint = (byte)zp;
        return scale;
    }

    /// <summary>The codes of a block for a given scale and zero point: round to nearest, clamped to the code range.</summary>
    public void Encode(ReadOnlySpan<float> w, float scale, byte zeroPoint, Span<byte> q)
    {
        float inv = 1f / scale;
        for (int i = 0; i < w.Length; i++) q[i] = (byte)Math.Clamp((int)MathF.Round(w[i] * inv) + zeroPoint, 0, MaxQ);
    }

    /// <summary>Quantizes then dequantizes one block (the value the kernel will see) into <paramref name="output"/>.</summary>
    public void FakeQuantizeBlock(ReadOnlySpan<float> w, float clip, Span<float> output)
    {
        Span<byte> q = stackalloc byte[w.Length];
        float scale = QuantizeBlock(w, clip, q, out var zp);
        for (int i = 0; i < w.Length; i++) output[i] = (q[i] - zp) * scale;
    }

    /// <summary>The quantized form of a weight (N, K) and its packed tensors.</summary>
    public sealed record Packed(int N, int K, int BlockSize, int Bits, byte[] B, float[] Scales, byte[]? ZeroPoints)
    {
        public int KBlocks => (K + BlockSize - 1) / BlockSize;
        public long Bytes => B.Length + Scales.Length * 4L + (ZeroPoints?.Length ?? 0);
    }

    /// <param name="weight">(N, K) row-major.</param>
    /// <summary>Chooses one block's scale and zero point and writes its codes.</summary>
    public delegate (float Scale, byte ZeroPoint) BlockChoice(int row, int block, ReadOnlySpan<float> weights, Span<byte> codes);

    /// <param name="choose">Per block, the scale, zero point and codes; null for round-to-nearest over the block's range.</param>
    public Packed Quantize(float[] weight, int n, int k, BlockChoice? choose = null)
    {
        int kBlocks = (k + BlockSize - 1) / BlockSize;
        int bytesPerBlock = BlockSize * Bits / 8;
        var b = new byte[(long)n * kBlocks * bytesPerBlock];
        var scales = new float[n * kBlocks];
        int zpRow = (kBlocks * Bits + 7) / 8;
        var zps = Symmetric ? null : new byte[n * zpRow];
        Parallel.For(0, n, row =>
        {
            Span<byte> q = stackalloc byte[BlockSize];
            for (int g = 0; g < kBlocks; g++)
            {
                int len = Math.Min(BlockSize, k - g * BlockSize);
                var block = weight.AsSpan(row * k + g * BlockSize, len);
                byte zp;
                float scale;
                if (choose is null) scale = QuantizeBlock(block, 1f, q, out zp);
                else (scale, zp) = choose(row, g, block, q);
                q[len..].Fill(zp);
                scales[row * kBlocks + g] = scale;
                long at = ((long)row * kBlocks + g) * bytesPerBlock;
                if (Bits == 8) q.CopyTo(b.AsSpan((int)at, BlockSize));
                else for (int j = 0; j < BlockSize; j += 2) b[at + j / 2] = (byte)(q[j] | (q[j + 1] << 4));
                if (zps is not null)
                {
                    if (Bits == 8) zps[row * zpRow + g] = zp;
                    else zps[row * zpRow + g / 2] |= (byte)(g % 2 == 0 ? zp : zp << 4);
                }
            }
        });
        if (zps is not null && Bits == 4 && kBlocks % 2 == 1)
            for (int row = 0; row < n; row++) zps[row * zpRow + zpRow - 1] |= (byte)(DefaultZeroPoint << 4); // pad nibble
        return new Packed(n, k, BlockSize, Bits, b, scales, zps);
    }

    /// <summary>The (N, K) weight a packed tensor stands for: the reference dequantization.</summary>
    public static float[] Dequantize(Packed p)
    {
        int kBlocks = p.KBlocks, bytesPerBlock = p.BlockSize * p.Bits / 8, zpRow = (kBlocks * p.Bits + 7) / 8;
        int defaultZp = 1 << (p.Bits - 1);
        var w = new float[(long)p.N * p.K];
        for (int row = 0; row < p.N; row++)
            for (int g = 0; g < kBlocks; g++)
            {
                float scale = p.Scales[row * kBlocks + g];
                int zp = p.ZeroPoints is null ? defaultZp
                    : p.Bits == 8 ? p.ZeroPoints[row * zpRow + g]
                    : (p.ZeroPoints[row * zpRow + g / 2] >> (g % 2 * 4)) & 0xF;
                long at = ((long)row * kBlocks + g) * bytesPerBlock;
                for (int j = 0; j < p.BlockSize && g * p.BlockSize + j < p.K; j++)
                {
                    int q = p.Bits == 8 ? p.B[at + j] : (p.B[at + j / 2] >> (j % 2 * 4)) & 0xF;
                    w[(long)row * p.K + g * p.BlockSize + j] = (q - zp) * scale;
                }
            }
        return w;
    }
}
