using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sio.Native;

/// <summary>
/// An input vector quantized to int8 in groups of 32 (one scale per group, amax / 127), the way
/// <see cref="BlockQuantizedMatrix"/> consumes it: in order (for 8-bit codes), and split (for 4-bit codes: each 128-value
/// chunk holds its 64 even-indexed values, then its 64 odd-indexed ones, which line up with the low and high nibbles of 64
/// packed weight bytes). Values past <see cref="Length"/> are zero up to a whole chunk.
/// </summary>
public sealed unsafe class Int8Activation : IDisposable
{
    public const int Group = 32;
    public const int Chunk = 128;

    /// <summary>(chunks × 128) int8 values in nibble order.</summary>
    internal readonly sbyte* Values;
    /// <summary>(chunks × 16) floats: each group's scale, repeated over the 4 int32 lanes its dot product lands in.</summary>
    internal readonly float* LaneScales;
    /// <summary>(chunks × 128) int8 values in order.</summary>
    internal readonly sbyte* Natural;
    /// <summary>(chunks × 32) floats: each group's scale over the 8 lanes it fills in order.</summary>
    internal readonly float* NaturalLaneScales;
    /// <summary>(chunks × 128) |value| in order, and −1 where the value is negative, 0 elsewhere: signed 8-bit codes
    /// multiply |x| after taking x's sign.</summary>
    internal readonly byte* Magnitudes;
    internal readonly sbyte* Signs;
    /// <summary>(groups padded to 16) floats: scale × Σ values of each group (what a zero point multiplies).</summary>
    internal readonly float* GroupSums;
    readonly float* _blockSums;
    int _blockSumsFor;
    readonly int _sumsLength;
    readonly int _capacity;

    public int Length { get; private set; }
    public int Chunks => (Length + Chunk - 1) / Chunk;

    public Int8Activation(int capacity)
    {
        _capacity = (capacity + Chunk - 1) / Chunk * Chunk;
        Values = (sbyte*)NativeMemory.AlignedAlloc((nuint)_capacity, 64);
        LaneScales = (float*)NativeMemory.AlignedAlloc((nuint)(_capacity / Chunk * 16 * sizeof(float)), 64);
        Natural = (sbyte*)NativeMemory.AlignedAlloc((nuint)_capacity, 64);
        Magnitudes = (byte*)NativeMemory.AlignedAlloc((nuint)_capacity, 64);
        Signs = (sbyte*)NativeMemory.AlignedAlloc((nuint)_capacity, 64);
        NaturalLaneScales = (float*)NativeMemory.AlignedAlloc((nuint)(_capacity / Chunk * 32 * sizeof(float)), 64);
        _sumsLength = (_capacity / Group + 15) / 16 * 16 + 16;
        GroupSums = (float*)NativeMemory.AlignedAlloc((nuint)(_sumsLength * sizeof(float)), 64);
        _blockSums = (float*)NativeMemory.AlignedAlloc((nuint)(_sumsLength * sizeof(float)), 64);
    }

    /// <summary>scale × Σ values per block of <paramref name="blockSize"/> (a multiple of 32), zero-padded to 16 blocks.
    /// Call before the matrices that read them run (not thread-safe).</summary>
    internal float* BlockSums(int blockSize)
    {
        if (blockSize == Group) return GroupSums;
        if (_blockSumsFor != blockSize)
        {
            int per = blockSize / Group, blocks = (Chunks * 4 + per - 1) / per;
            for (int b = 0; b < _sumsLength; b++)
            {
                float s = 0;
                if (b < blocks) for (int g = b * per; g < (b + 1) * per; g++) s += GroupSums[g];
                _blockSums[b] = s;
            }
            _blockSumsFor = blockSize;
        }
        return _blockSums;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first call: tiering would leave it unoptimized for the first thousands of calls
    public void Quantize(ReadOnlySpan<float> x)
    {
        if (x.Length > _capacity) throw new ArgumentException($"input of {x.Length} values exceeds the capacity of {_capacity}");
        Length = x.Length;
        _blockSumsFor = 0;
        int chunks = Chunks;
        NativeMemory.Clear(Values, (nuint)(chunks * Chunk));
        NativeMemory.Clear(Natural, (nuint)(chunks * Chunk));
        NativeMemory.Clear(Magnitudes, (nuint)(chunks * Chunk));
        NativeMemory.Clear(Signs, (nuint)(chunks * Chunk));
        int groups = chunks * 4;
        NativeMemory.Clear(GroupSums, (nuint)(_sumsLength * sizeof(float)));
        int whole = x.Length / Group;
        fixed (float* xp = x)
        {
            int g = 0;
            if (Avx512BW.IsSupported)
                for (; g < whole; g++) QuantizeGroupAvx512(xp + g * Group, g);
            for (; g < groups; g++)
            {
                int start = g * Group, end = Math.Min(start + Group, x.Length);
                float amax = 0;
                for (int i = start; i < end; i++) amax = MathF.Max(amax, MathF.Abs(x[i]));
                float scale = amax / 127f, inv = scale == 0 ? 0 : 127f / amax;
                sbyte* even = Values + g / 4 * Chunk + g % 4 * 16, odd = even + 64;
                int sum = 0;
                for (int i = start; i < end; i++)
                {
                    int q = (int)MathF.Round(x[i] * inv);
                    sum += q;
                    Natural[i] = (sbyte)q;
                    Magnitudes[i] = (byte)Math.Abs(q);
                    Signs[i] = (sbyte)(q < 0 ? -1 : 0);
                    int j = (i - start) >> 1;
                    if (((i - start) & 1) == 0) even[j] = (sbyte)q; else odd[j] = (sbyte)q;
                }
                SetScale(g, scale, sum);
            }
        }
    }

    void SetScale(int g, float scale, int sum)
    {
        for (int lane = 0; lane < 4; lane++) LaneScales[g * 4 + lane] = scale;
        for (int lane = 0; lane < 8; lane++) NaturalLaneScales[g * 8 + lane] = scale;
        GroupSums[g] = scale * sum;
    }

    /// <summary>The same as the scalar loop for one whole group: round to nearest even, saturate, split even and odd.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first call: tiering would leave it unoptimized for the first thousands of calls
    void QuantizeGroupAvx512(float* x, int g)
    {
        var a = Vector512.Load(x);
        var b = Vector512.Load(x + 16);
        float amax = MaxAcross(Vector512.Max(Vector512.Abs(a), Vector512.Abs(b)));
        float scale = amax / 127f, inv = scale == 0 ? 0 : 127f / amax;
        var qa = Avx512F.ConvertToVector512Int32(a * inv);
        var qb = Avx512F.ConvertToVector512Int32(b * inv);
        int sum = Vector512.Sum(qa + qb);
        var split = Vector128.Create((byte)0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
        var first = Avx512F.ConvertToVector128SByteWithSaturation(qa);
        var second = Avx512F.ConvertToVector128SByteWithSaturation(qb);
        first.Store(Natural + g * Group);
        second.Store(Natural + g * Group + 16);
        Vector128.Abs(first).AsByte().Store(Magnitudes + g * Group);
        Vector128.Abs(second).AsByte().Store(Magnitudes + g * Group + 16);
        Vector128.LessThan(first, Vector128<sbyte>.Zero).Store(Signs + g * Group);
        Vector128.LessThan(second, Vector128<sbyte>.Zero).Store(Signs + g * Group + 16);
        var lo = Ssse3.Shuffle(first.AsByte(), split).AsUInt64();
        var hi = Ssse3.Shuffle(second.AsByte(), split).AsUInt64();
        sbyte* even = Values + g / 4 * Chunk + g % 4 * 16;
        Sse2.UnpackLow(lo, hi).AsSByte().Store(even);
        Sse2.UnpackHigh(lo, hi).AsSByte().Store(even + 64);
        SetScale(g, scale, sum);
    }

    static float MaxAcross(Vector512<float> v)
    {
        var h = Vector256.Max(v.GetLower(), v.GetUpper());
        var q = Vector128.Max(h.GetLower(), h.GetUpper());
        q = Vector128.Max(q, Sse.Shuffle(q, q, 0b01_00_11_10));
        q = Vector128.Max(q, Sse.Shuffle(q, q, 0b10_11_00_01));
        return q.ToScalar();
    }

    public void Dispose()
    {
        NativeMemory.AlignedFree(Values);
        NativeMemory.AlignedFree(LaneScales);
        NativeMemory.AlignedFree(Natural);
        NativeMemory.AlignedFree(Magnitudes);
        NativeMemory.AlignedFree(Signs);
        NativeMemory.AlignedFree(NaturalLaneScales);
        NativeMemory.AlignedFree(GroupSums);
        NativeMemory.AlignedFree(_blockSums);
    }
}
