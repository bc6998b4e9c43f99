using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sio.Native;

/// <summary>How the native decoder stores a run of floats it reads often (keys and values, block scales): the kernels are
/// generic over it, so each format compiles to its own loads.</summary>
public unsafe interface IStoredFloat
{
    /// <summary>Bytes per value.</summary>
    static abstract int Size { get; }
    static abstract float Load(byte* values, int i);
    static abstract Vector128<float> Load4(byte* values, int i);
    static abstract Vector512<float> Load16(byte* values, int i);
}

/// <summary>Floats as they are.</summary>
public readonly unsafe struct Fp32 : IStoredFloat
{
    public static int Size => sizeof(float);
    public static float Load(byte* values, int i) => ((float*)values)[i];
    public static Vector128<float> Load4(byte* values, int i) => Vector128.Load((float*)values + i);
    public static Vector512<float> Load16(byte* values, int i) => Vector512.Load((float*)values + i);
}

/// <summary>bfloat16: a float's upper 16 bits, rounded to nearest even (8 bits of mantissa).</summary>
public readonly unsafe struct Bf16 : IStoredFloat
{
    public static int Size => sizeof(ushort);
    public static float Load(byte* values, int i) => BitConverter.Int32BitsToSingle(((ushort*)values)[i] << 16);
    public static Vector128<float> Load4(byte* values, int i) => (Sse41.ConvertToVector128Int32((ushort*)values + i) << 16).AsSingle();
    public static Vector512<float> Load16(byte* values, int i) =>
        (Avx512F.ConvertToVector512UInt32(Vector256.Load((ushort*)values + i)) << 16).AsSingle();

    /// <summary>True when every value is a bfloat16 already (its lower 16 bits are zero).</summary>
    public static bool Exact(ReadOnlySpan<float> values)
    {
        foreach (var v in values) if ((BitConverter.SingleToUInt32Bits(v) & 0xFFFF) != 0) return false;
        return true;
    }

    /// <summary>Rounds floats in place to the nearest bfloat16.</summary>
    public static void Round(Span<float> values)
    {
        foreach (ref var v in values)
        {
            v = BitConverter.UInt32BitsToSingle((uint)Nearest(v) << 16);
        }
    }

    /// <summary>Rounds floats to bfloat16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first call: tiering would leave it unoptimized for the first thousands of calls
    public static void From(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        if (destination.Length < source.Length) throw new ArgumentException("destination too short");
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
            fixed (float* s = source)
            fixed (ushort* d = destination)
                for (; i + 32 <= source.Length; i += 32)
                    Vector512.Narrow(Round(Vector512.Load(s + i).AsUInt32()), Round(Vector512.Load(s + i + 16).AsUInt32())).Store(d + i);
        for (; i < source.Length; i++) destination[i] = Nearest(source[i]);
    }

    /// <summary>The bfloat16 nearest to x, ties to even.</summary>
    static ushort Nearest(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }

    /// <summary><see cref="Nearest"/> on 16 floats' bits at once.</summary>
    static Vector512<uint> Round(Vector512<uint> bits) =>
        Vector512.ShiftRightLogical(bits + Vector512.Create(0x7FFFu) + (Vector512.ShiftRightLogical(bits, 16) & Vector512.Create(1u)), 16);
}
