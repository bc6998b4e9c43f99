using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Sio.Native;

/// <summary>A float32 weight matrix stored as (N outputs, K inputs) rows, each padded to 16 values and 64-byte aligned.</summary>
public sealed unsafe class Float32Matrix : IDisposable
{
    public int N { get; }
    public int K { get; }
    readonly int _stride;
    readonly float* _rows;
    readonly float[]? _bias;

    public long Bytes => (long)N * _stride * sizeof(float);

    /// <param name="inputMajor">(K, N) as an ONNX MatMul's second input stores it.</param>
    public static Float32Matrix FromInputMajor(int k, int n, ReadOnlySpan<float> inputMajor, float[]? bias = null)
    {
        if (inputMajor.Length != (long)k * n) throw new SioException($"float weights hold {inputMajor.Length} values, ({k}, {n}) expected");
        var m = new Float32Matrix(n, k, bias);
        for (int i = 0; i < k; i++)
            for (int o = 0; o < n; o++) m._rows[(long)o * m._stride + i] = inputMajor[i * n + o];
        return m;
    }

    /// <param name="outputMajor">(N, K), the layout of an embedding table shared with the classifier.</param>
    public static Float32Matrix FromOutputMajor(int n, int k, ReadOnlySpan<float> outputMajor)
    {
        if (outputMajor.Length != (long)k * n) throw new SioException($"float weights hold {outputMajor.Length} values, ({n}, {k}) expected");
        var m = new Float32Matrix(n, k, null);
        for (int o = 0; o < n; o++) outputMajor.Slice(o * k, k).CopyTo(new Span<float>(m._rows + (long)o * m._stride, k));
        return m;
    }

    Float32Matrix(int n, int k, float[]? bias)
    {
        N = n; K = k; _bias = bias;
        _stride = (k + 15) / 16 * 16;
        nuint bytes = (nuint)((long)n * _stride * sizeof(float));
        _rows = (float*)NativeMemory.AlignedAlloc(bytes, 64);
        NativeMemory.Clear(_rows, bytes);
    }

    /// <summary>One row (an embedding lookup).</summary>
    public ReadOnlySpan<float> Row(int n) => new(_rows + (long)n * _stride, K);

    /// <summary>y[n0..n1) = this · x (+ bias); <paramref name="x"/> holds at least K values, zero-padded to 16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first call: tiering would leave it unoptimized for the first thousands of calls
    public void Multiply(float* x, float* y, int n0, int n1)
    {
        for (int r = n0; r < n1; r++)
        {
            float* w = _rows + (long)r * _stride;
            var a0 = Vector512<float>.Zero; var a1 = Vector512<float>.Zero;
            int i = 0;
            for (; i + 32 <= _stride; i += 32)
            {
                a0 = Vector512.FusedMultiplyAdd(Vector512.Load(w + i), Vector512.Load(x + i), a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.Load(w + i + 16), Vector512.Load(x + i + 16), a1);
            }
            if (i < _stride) a0 = Vector512.FusedMultiplyAdd(Vector512.Load(w + i), Vector512.Load(x + i), a0);
            y[r] = Vector512.Sum(a0 + a1) + (_bias is null ? 0 : _bias[r]);
        }
    }

    public void Dispose() => NativeMemory.AlignedFree(_rows);
}
