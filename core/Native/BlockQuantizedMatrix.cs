using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sio.Native;

/// <summary>
/// A 4- or 8-bit weight matrix in ONNX Runtime's MatMulNBits layout (rows of N outputs, blocks of K inputs; 4-bit codes
/// two per byte, low nibble first; one float scale per block and an optional zero point, 2^(bits−1) when absent), copied
/// into 64-byte aligned rows padded to whole 128-input chunks, and multiplied by an <see cref="Int8Activation"/>:
///
///   y[n] = Σ_b scale[n,b] · (Σ_i code[n,i] · x[i] − zero[n,b] · Σ_i x[i])   over the inputs i of block b,
///
/// where x is the int8 input times its group scales. The code · x products are integer (AVX-512BW unsigned × signed
/// byte multiply-adds; an 8-bit code goes in as its two nibbles); each 32-input group's sum then gets its two scales as
/// floats. Scales that are all bfloat16 values (<c>sio quantize --bf16-scales</c>) are kept in 2 bytes instead of 4.
/// </summary>
public sealed unsafe class BlockQuantizedMatrix : IDisposable
{
    public int Bits { get; }
    public int N { get; }
    public int K { get; }
    public int BlockSize { get; }
    readonly int _blocks, _chunks, _rowBytes, _scaleStride;
    readonly byte* _codes;       // (N, chunks × 64)
    readonly byte* _scales;      // (N, scaleStride) floats or bfloat16s, zero-padded
    readonly bool _bf16Scales;
    readonly byte* _zeros;       // (N, scaleStride) one zero point per byte, or null (symmetric)
    readonly float[]? _bias;
    readonly bool _signed;
    // which block scale each int32 lane of a 128-input chunk (4-bit) or a 64-input step (8-bit) takes, and which of a
    // chunk's four loaded scales are its own
    readonly Vector512<int> _chunkScaleLanes, _stepScaleLanes;
    readonly Vector128<float> _chunkScales;       // symmetric 8-bit codes stored as code − 128 (signed bytes; no zero-point shift)

    /// <summary>Bytes streamed per product (codes, scales and zero points as stored here).</summary>
    public long Bytes => (long)N * (_rowBytes + _scaleStride * ((_bf16Scales ? Bf16.Size : Fp32.Size) + (_zeros is null ? 0 : 1)));
    /// <summary>True when the scales are kept as bfloat16 (they all were bfloat16 values).</summary>
    public bool Bf16Scales => _bf16Scales;
    int ScaleRowBytes => _scaleStride * (_bf16Scales ? Bf16.Size : Fp32.Size);

    /// <param name="codes">(N, blocks, blockSize · bits / 8) bytes as MatMulNBits stores them.</param>
    /// <param name="scales">(N, blocks).</param>
    /// <param name="zeroPoints">(N, ⌈blocks · bits / 8⌉) packed zero points, or empty.</param>
    public BlockQuantizedMatrix(int bits, int n, int k, int blockSize, ReadOnlySpan<byte> codes, ReadOnlySpan<float> scales, ReadOnlySpan<byte> zeroPoints, float[]? bias)
    {
        if (bits is not (4 or 8)) throw new SioException($"{bits}-bit weights are not supported by the native engine (4 or 8)");
        if (blockSize is not (32 or 64 or 128)) throw new SioException($"{bits}-bit block size {blockSize} is not supported by the native engine (32, 64 or 128)");
        int blocks = (k + blockSize - 1) / blockSize, blockBytes = blockSize * bits / 8;
        if (codes.Length != (long)n * blocks * blockBytes) throw new SioException($"{bits}-bit weights hold {codes.Length} bytes, ({n}, {blocks}, {blockBytes}) expected");
        if (scales.Length != (long)n * blocks) throw new SioException($"{bits}-bit scales hold {scales.Length} values, ({n}, {blocks}) expected");
        int zpRow = (blocks * bits + 7) / 8;
        if (!zeroPoints.IsEmpty && zeroPoints.Length != (long)n * zpRow) throw new SioException($"{bits}-bit zero points hold {zeroPoints.Length} bytes, ({n}, {zpRow}) expected");
        if (bias is not null && bias.Length != n) throw new SioException($"bias holds {bias.Length} values, {n} expected");
        Bits = bits; N = n; K = k; BlockSize = blockSize; _bias = bias;
        (_chunkScaleLanes, _chunkScales) = blockSize switch
        {
            32 => (Vector512.Create(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3), Vector128.Create(1f)),
            64 => (Vector512.Create(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), Vector128.Create(1f, 1f, 0f, 0f)),
            _ => (Vector512<int>.Zero, Vector128.Create(1f, 0f, 0f, 0f)),
        };
        _stepScaleLanes = blockSize == 32 ? Vector512.Create(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1) : Vector512<int>.Zero;
        _chunks = (k + Int8Activation.Chunk - 1) / Int8Activation.Chunk;
        _rowBytes = _chunks * Int8Activation.Chunk * bits / 8;
        // unpadded beyond what the chunks read: scales are a fifth of a 4-bit row's bytes, and padding 768 inputs' 24 scales
        // to 32 cost 5 % of a decode step
        _blocks = blocks;
        _scaleStride = Math.Max(blocks, _chunks * Int8Activation.Chunk / blockSize);
        _codes = (byte*)NativeMemory.AlignedAlloc((nuint)((long)n * _rowBytes), 64);
        NativeMemory.Clear(_codes, (nuint)((long)n * _rowBytes));
        _bf16Scales = Bf16.Exact(scales);
        nuint scaleBytes = (nuint)(((long)n * _scaleStride + 16) * sizeof(float));
        _scales = (byte*)NativeMemory.AlignedAlloc(scaleBytes, 64);
        NativeMemory.Clear(_scales, scaleBytes);
        for (int r = 0; r < n; r++)
        {
            codes.Slice(r * blocks * blockBytes, blocks * blockBytes).CopyTo(new Span<byte>(_codes + (long)r * _rowBytes, _rowBytes));
            var rowScales = scales.Slice(r * blocks, blocks);
            if (_bf16Scales)
                for (int b = 0; b < blocks; b++) ((ushort*)_scales)[(long)r * _scaleStride + b] = (ushort)(BitConverter.SingleToUInt32Bits(rowScales[b]) >> 16);
            else rowScales.CopyTo(new Span<float>((float*)_scales + (long)r * _scaleStride, _scaleStride));
        }
        // symmetric 8-bit codes (1 … 255 around 128, as sio writes them) become signed bytes, which multiply |x| once they
        // carry x's sign: one byte multiply-add per 64 inputs instead of one per nibble
        if (bits == 8 && zeroPoints.IsEmpty && !codes.Contains((byte)0))
        {
            _signed = true;
            for (long i = 0; i < (long)n * _rowBytes; i++) _codes[i] = (byte)(_codes[i] - 128);
            for (int r = 0; r < n; r++) // padding stays zero
                new Span<byte>(_codes + (long)r * _rowBytes + blocks * blockBytes, _rowBytes - blocks * blockBytes).Clear();
        }
        if (!zeroPoints.IsEmpty)
        {
            _zeros = (byte*)NativeMemory.AlignedAlloc((nuint)((long)n * _scaleStride + 16), 64);
            NativeMemory.Clear(_zeros, (nuint)((long)n * _scaleStride + 16));
            for (int r = 0; r < n; r++)
                for (int b = 0; b < blocks; b++)
                {
                    byte packed = zeroPoints[r * zpRow + (bits == 8 ? b : b / 2)];
                    _zeros[(long)r * _scaleStride + b] = (byte)(bits == 8 ? packed : (b & 1) == 0 ? packed & 0x0F : packed >> 4);
                }
        }
    }

    /// <summary>y[n0..n1) = this · x (+ bias). Call <see cref="Int8Activation.BlockSums"/> for this block size first when
    /// several threads share the input.</summary>
    public void Multiply(Int8Activation x, float* y, int n0, int n1)
    {
        if (x.Chunks != _chunks) throw new ArgumentException($"input of {x.Length} values for a matrix of {K} inputs");
        float* sums = x.BlockSums(BlockSize);
        if (_bf16Scales) Multiply<Bf16>(x, sums, y, n0, n1);
        else Multiply<Fp32>(x, sums, y, n0, n1);
    }

    void Multiply<TScale>(Int8Activation x, float* sums, float* y, int n0, int n1) where TScale : IStoredFloat
    {
        if (!Avx512BW.IsSupported || ForceScalar) MultiplyScalar<TScale>(x, sums, y, n0, n1);
        else if (Bits == 4) Multiply4Avx512<TScale>(x, sums, y, n0, n1);
        else if (_signed) MultiplySignedAvx512<TScale>(x, y, n0, n1);
        else Multiply8Avx512<TScale>(x, sums, y, n0, n1);
    }

    /// <summary>Tests compare the AVX-512 kernels with the scalar one.</summary>
    internal static bool ForceScalar;

    /// <summary>What row r adds to its code · x sum: its bias, less the zero points' share, taken right after the row
    /// while its scales are still in the L1 cache.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    float Finish<TScale>(int r, float* sums) where TScale : IStoredFloat =>
        (_bias is null ? 0 : _bias[r]) - (sums is null ? 0 : ZeroShift<TScale>(r, sums));

    /// <summary>Σ_b scale · zero · (scale_x · Σ x) over row r's blocks, 16 at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first call: tiering would leave it unoptimized for the first thousands of calls
    float ZeroShift<TScale>(int r, float* sums) where TScale : IStoredFloat
    {
        byte* s = _scales + (long)r * ScaleRowBytes;
        byte* z = _zeros is null ? null : _zeros + (long)r * _scaleStride;
        float total = 0;
        int b = 0;
        if (Avx512F.IsSupported && !ForceScalar)
        {
            var shift = Vector512<float>.Zero;
            for (; b + 16 <= _blocks; b += 16)
            {
                var scaled = TScale.Load16(s, b);
                if (z is not null) scaled *= Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(z + b)));
                shift = Avx512F.FusedMultiplyAdd(scaled, Vector512.Load(sums + b), shift);
            }
            total = Vector512.Sum(shift) * (z is null ? 1 << (Bits - 1) : 1);
        }
        for (; b < _blocks; b++) total += TScale.Load(s, b) * (z is null ? 1 << (Bits - 1) : z[b]) * sums[b];
        return total;
    }

    /// <summary>One row at a time: per 128-input chunk, 64 bytes of nibbles against the input's even and odd values, and
    /// the zero points' share from the chunk's own block scales (still in registers).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first call: tiering would leave it unoptimized for the first thousands of calls
    void Multiply4Avx512<TScale>(Int8Activation x, float* sums, float* y, int n0, int n1) where TScale : IStoredFloat
    {
        var low = Vector512.Create((byte)0x0F);
        var ones = Vector512.Create((short)1);
        var expand = _chunkScaleLanes;
        int scalesPerChunk = Int8Activation.Chunk / BlockSize;
        // the lanes of a 4-scale load that belong to this chunk (the rest are the next chunk's)
        var own = _chunkScales;
        for (int r = n0; r < n1; r++)
        {
            byte* w = _codes + (long)r * _rowBytes;
            byte* s = _scales + (long)r * ScaleRowBytes;
            byte* z = _zeros is null ? null : _zeros + (long)r * _scaleStride;
            sbyte* a = x.Values;
            float* lane = x.LaneScales;
            float* sum = sums;
            var acc = Vector512<float>.Zero;
            var shift = Vector128<float>.Zero;
            for (int c = 0; c < _chunks; c++, w += 64, a += 128, lane += 16, s += scalesPerChunk * TScale.Size, sum += scalesPerChunk)
            {
                var v = Vector512.Load(w);
                var lo = v & low;
                var hi = Vector512.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & low;
                var pairs = Avx512BW.MultiplyAddAdjacent(lo, Vector512.Load(a)) + Avx512BW.MultiplyAddAdjacent(hi, Vector512.Load(a + 64));
                var dots = Avx512BW.MultiplyAddAdjacent(pairs, ones);
                var scales4 = TScale.Load4(s, 0);
                var blockScales = Avx512F.PermuteVar16x32(scales4.ToVector256Unsafe().ToVector512Unsafe(), expand);
                acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(dots), blockScales * Vector512.Load(lane), acc);
                if (z is not null) { scales4 *= Sse2.ConvertToVector128Single(Sse41.ConvertToVector128Int32(z)); z += scalesPerChunk; }
                shift = Fma.MultiplyAdd(scales4, Vector128.Load(sum) * own, shift);
            }
            y[r] = Vector512.Sum(acc) - Vector128.Sum(shift) * (_zeros is null ? 8 : 1) + (_bias is null ? 0 : _bias[r]);
        }
    }

    /// <summary>8-bit codes: each 64-byte step holds 64 inputs in order, multiplied as 16 · high nibble + low nibble
    /// (an unsigned byte times a signed one must stay under 2^15 in pairs).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first call: tiering would leave it unoptimized for the first thousands of calls
    void Multiply8Avx512<TScale>(Int8Activation x, float* sums, float* y, int n0, int n1) where TScale : IStoredFloat
    {
        var low = Vector512.Create((byte)0x0F);
        var ones = Vector512.Create((short)1);
        var sixteens = Vector512.Create((short)16);
        var expand = _stepScaleLanes;
        int steps = _chunks * 2;
        for (int r = n0; r < n1; r++)
        {
            byte* w = _codes + (long)r * _rowBytes;
            byte* s = _scales + (long)r * ScaleRowBytes;
            var acc = Vector512<float>.Zero;
            for (int c = 0; c < steps; c++)
            {
                var v = Vector512.Load(w + c * 64);
                var a = Vector512.Load(x.Natural + c * 64);
                var hi = Vector512.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & low;
                var dots = Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(hi, a), sixteens)
                    + Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(v & low, a), ones);
                var blockScales = Avx512F.PermuteVar16x32(TScale.Load4(s, c * 64 / BlockSize).ToVector256Unsafe().ToVector512Unsafe(), expand);
                acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(dots), blockScales * Vector512.Load(x.NaturalLaneScales + c * 16), acc);
            }
            y[r] = Vector512.Sum(acc) + Finish<TScale>(r, sums);
        }
    }

    /// <summary>Signed 8-bit codes: (code − 128) · x = (±(code − 128)) · |x|, an unsigned × signed byte multiply-add whose
    /// pairs stay under 2^15 (127 · 128 · 2).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first call: tiering would leave it unoptimized for the first thousands of calls
    void MultiplySignedAvx512<TScale>(Int8Activation x, float* y, int n0, int n1) where TScale : IStoredFloat
    {
        var ones = Vector512.Create((short)1);
        var expand = _stepScaleLanes;
        int steps = _chunks * 2;
        for (int r = n0; r < n1; r++)
        {
            sbyte* w = (sbyte*)_codes + (long)r * _rowBytes;
            byte* s = _scales + (long)r * ScaleRowBytes;
            var acc = Vector512<float>.Zero;
            for (int c = 0; c < steps; c++)
            {
                var sign = Vector512.Load(x.Signs + c * 64);
                var signed = (Vector512.Load(w + c * 64) ^ sign) - sign;
                var dots = Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(Vector512.Load(x.Magnitudes + c * 64), signed), ones);
                var blockScales = Avx512F.PermuteVar16x32(TScale.Load4(s, c * 64 / BlockSize).ToVector256Unsafe().ToVector512Unsafe(), expand);
                acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(dots), blockScales * Vector512.Load(x.NaturalLaneScales + c * 16), acc);
            }
            y[r] = Vector512.Sum(acc) + Finish<TScale>(r, null);
        }
    }

    /// <summary>The kernels' arithmetic one code at a time (machines without AVX-512, and the tests' reference).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first call: tiering would leave it unoptimized for the first thousands of calls
    void MultiplyScalar<TScale>(Int8Activation x, float* sums, float* y, int n0, int n1) where TScale : IStoredFloat
    {
        int inputs = _chunks * Int8Activation.Chunk;
        for (int r = n0; r < n1; r++)
        {
            byte* w = _codes + (long)r * _rowBytes;
            byte* s = _scales + (long)r * ScaleRowBytes;
            float total = 0;
            for (int g = 0; g < inputs / Int8Activation.Group; g++)
            {
                int dot = 0;
                for (int i = g * 32; i < g * 32 + 32; i++)
                {
                    int code = _signed ? (sbyte)w[i] + 128 : Bits == 8 ? w[i] : (w[i / 32 * 16 + i % 32 / 2] >> (i % 2 * 4)) & 0x0F;
                    dot += code * x.Natural[i];
                }
                total += dot * TScale.Load(s, g * 32 / BlockSize) * x.NaturalLaneScales[g * 8];
            }
            y[r] = total + Finish<TScale>(r, sums);
        }
    }

    public void Dispose()
    {
        NativeMemory.AlignedFree(_codes);
        NativeMemory.AlignedFree(_scales);
        if (_zeros is not null) NativeMemory.AlignedFree(_zeros);
    }
}
