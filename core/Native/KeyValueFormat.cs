using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sio.Native;

/// <summary>How the native decoder's attention reads one stored key or value row.</summary>
public unsafe interface IKeyValueFormat
{
    /// <summary>Bytes per value.</summary>
    static abstract int Size { get; }
    static abstract float Load(byte* row, int i);
    static abstract Vector512<float> Load16(byte* row, int i);
}

/// <summary>Float entries, as ONNX Runtime writes them.</summary>
public readonly unsafe struct Fp32 : IKeyValueFormat
{
    public static int Size => sizeof(float);
    public static float Load(byte* row, int i) => ((float*)row)[i];
    public static Vector512<float> Load16(byte* row, int i) => Vector512.Load((float*)row + i);
}

/// <summary>bfloat16 entries: a float's upper 16 bits, rounded to nearest even (8 bits of mantissa).</summary>
public readonly unsafe struct Bf16 : IKeyValueFormat
{
    public static int Size => sizeof(ushort);
    public static float Load(byte* row, int i) => BitConverter.Int32BitsToSingle(((ushort*)row)[i] << 16);
    public static Vector512<float> Load16(byte* row, int i) =>
        (Avx512F.ConvertToVector512UInt32(Vector256.Load((ushort*)row + i)) << 16).AsSingle();

    /// <summary>Rounds floats to bfloat16.</summary>
    public static void From(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        if (destination.Length < source.Length) throw new ArgumentException("destination too short");
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
            fixed (float* s = source)
            fixed (ushort* d = destination)
                for (; i + 32 <= source.Length; i += 32)
                    Vector512.Narrow(Round(Vector512.Load(s + i).AsUInt32()), Round(Vector512.Load(s + i + 16).AsUInt32())).Store(d + i);
        for (; i < source.Length; i++)
        {
            uint bits = BitConverter.SingleToUInt32Bits(source[i]);
            destination[i] = (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
        }
    }

    static Vector512<uint> Round(Vector512<uint> bits) =>
        Vector512.ShiftRightLogical(bits + Vector512.Create(0x7FFFu) + (Vector512.ShiftRightLogical(bits, 16) & Vector512.Create(1u)), 16);
}
