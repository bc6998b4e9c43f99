using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Sio.Models;

/// <summary>
/// A llama2.c version-0 checkpoint: seven int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
/// vocab_size, seq_len; a negative vocab_size means a separate classifier follows), then float32
/// tensors stacked per kind over layers. Rotary pairs are interleaved.
/// </summary>
public sealed class Llama2cCheckpoint : ICheckpoint
{
    const int HeaderBytes = 7 * 4;
    readonly SafeFileHandle _file;
    readonly Dictionary<string, (long Offset, long Count, long Stride)> _tensors = new();

    public DecoderConfig Config { get; }
    public string Source { get; }

    public Llama2cCheckpoint(string path)
    {
        Source = path;
        if (!File.Exists(path)) throw SioException.InFile(path, "file not found");
        _file = File.OpenHandle(path);
        try
        {
            long length = RandomAccess.GetLength(_file);
            if (length < HeaderBytes) throw SioException.InFile(path, $"not a llama2.c checkpoint: {length} bytes is shorter than its 28-byte header");
            var h = new int[7];
            RandomAccess.Read(_file, MemoryMarshal.AsBytes(h.AsSpan()), 0);
            bool shared = h[5] > 0;
            int vocab = h[5] == int.MinValue ? 0 : Math.Abs(h[5]); // int.MinValue has no positive counterpart: Validate refuses 0
            Config = new DecoderConfig
            {
                Dim = h[0], HiddenDim = h[1], Layers = h[2], Heads = h[3], KvHeads = h[4], VocabSize = vocab, ContextLength = h[6],
                RotaryInterleaved = true, TiedEmbeddings = shared, Architecture = "LlamaForCausalLM",
            };
            try { Config.Validate(path); }
            catch (SioException e) { throw SioException.InFile(path, $"not a llama2.c checkpoint: header {string.Join(",", h)} ({e.Message[(path.Length + 2)..]})"); }

            var c = Config;
            long offset = HeaderBytes;
            void Add(string kind, long perLayer, int layers)
            {
                _tensors[kind] = (offset, perLayer, perLayer);
                offset += perLayer * layers * 4;
            }
            Add("embed", (long)vocab * c.Dim, 1);
            Add("attn_norm", c.Dim, c.Layers);
            Add("wq", (long)c.QDim * c.Dim, c.Layers);
            Add("wk", (long)c.KvDim * c.Dim, c.Layers);
            Add("wv", (long)c.KvDim * c.Dim, c.Layers);
            Add("wo", (long)c.Dim * c.QDim, c.Layers);
            Add("ffn_norm", c.Dim, c.Layers);
            Add("w1", (long)c.HiddenDim * c.Dim, c.Layers);
            Add("w2", (long)c.Dim * c.HiddenDim, c.Layers);
            Add("w3", (long)c.HiddenDim * c.Dim, c.Layers);
            Add("norm", c.Dim, 1);
            offset += 2L * c.ContextLength * (c.HeadDim / 2) * 4; // freq_cis_real, freq_cis_imag (recomputed from theta)
            if (!shared) Add("lm_head", (long)vocab * c.Dim, 1);
            if (length < offset)
                throw SioException.InFile(path, $"truncated llama2.c checkpoint: the header (dim {c.Dim}, hidden {c.HiddenDim}, layers {c.Layers}, vocab {vocab}) needs {offset} bytes, the file has {length}");
            if (length > offset)
                throw SioException.InFile(path, $"not a llama2.c version-0 checkpoint: {length - offset} bytes follow the last tensor the header describes");
        }
        catch
        {
            _file.Dispose();
            throw;
        }
    }

    public float[] Read(string name)
    {
        int layer = 0;
        string kind = name;
        if (name.StartsWith("layers."))
        {
            var parts = name.Split('.');
            layer = int.Parse(parts[1]);
            kind = parts[2];
        }
        if (kind == "lm_head" && Config.TiedEmbeddings) kind = "embed";
        if (!_tensors.TryGetValue(kind, out var t)) throw new ArgumentException($"unknown tensor {name}");
        var values = new float[t.Count];
        RandomAccess.Read(_file, MemoryMarshal.AsBytes(values.AsSpan()), t.Offset + layer * t.Stride * 4);
        return values;
    }

    public void Dispose() => _file.Dispose();
}
