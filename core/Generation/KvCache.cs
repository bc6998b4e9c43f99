using Microsoft.ML.OnnxRuntime;
using Sio.Models;

namespace Sio.Generation;

/// <summary>
/// A preallocated key/value cache: per layer one key and one value buffer of shape
/// (1, kv_heads, capacity, head). It is bound as both the past input and the present output of
/// GroupQueryAttention, which then writes new entries in place: a decode step copies nothing, and
/// rolling back is setting <see cref="Length"/> lower.
/// </summary>
public sealed class KvCache : IDisposable
{
    readonly float[][] _keys;    // (layer) → (1, kv_heads, capacity, head)
    readonly float[][] _values;  // (layer) → (1, kv_heads, capacity, head)
    internal readonly OrtValue[] Keys;
    internal readonly OrtValue[] Values;

    public int Capacity { get; }
    /// <summary>Positions holding valid entries.</summary>
    public int Length
    {
        get => _length;
        internal set
        {
            _length = value;
            if (Bf16Valid > value) Bf16Valid = value;
        }
    }
    int _length;

    /// <summary>bfloat16 copies of the keys and values, (layer) → (kv_heads, capacity, head), that the native decoder reads
    /// (half the bytes of a decode step's attention); made by it on first use.</summary>
    internal ushort[][]? Bf16Keys, Bf16Values;
    /// <summary>Positions whose bfloat16 copies match the float entries (a rewind lowers it; appends by ONNX Runtime land
    /// past it).</summary>
    internal int Bf16Valid;

    public KvCache(DecoderConfig c, int capacity)
    {
        Capacity = capacity;
        long[] shape = [1, c.KvHeads, capacity, c.HeadDim];
        _keys = new float[c.Layers][];
        _values = new float[c.Layers][];
        Keys = new OrtValue[c.Layers];
        Values = new OrtValue[c.Layers];
        for (int l = 0; l < c.Layers; l++)
        {
            _keys[l] = new float[(long)c.KvHeads * capacity * c.HeadDim];
            _values[l] = new float[_keys[l].Length];
            Keys[l] = OrtValue.CreateTensorValueFromMemory(_keys[l], shape);
            Values[l] = OrtValue.CreateTensorValueFromMemory(_values[l], shape);
        }
    }

    /// <summary>Layer <paramref name="layer"/>'s keys, (kv_heads, capacity, head), for a decoder outside ONNX Runtime.</summary>
    internal float[] KeyBuffer(int layer) => _keys[layer];
    internal float[] ValueBuffer(int layer) => _values[layer];

    /// <summary>Bytes held by the cache.</summary>
    public long Bytes => _keys.Sum(k => (long)k.Length * 8);

    public void Dispose()
    {
        foreach (var v in Keys) v.Dispose();
        foreach (var v in Values) v.Dispose();
    }
}
