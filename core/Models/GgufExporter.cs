using System.Runtime.InteropServices;
using System.Text;
using Sio.Onnx;
using Sio.Tokenization;

namespace Sio.Models;

/// <summary>
/// Writes a float32 sio model folder as a GGUF file (version 3) that llama.cpp runs: architecture metadata (llama.cpp's
/// llama, qwen2, qwen3, phi3, gemma2 or gemma3), the tokenizer (<see cref="GgufTokenizer"/>), and the tensors as F32, Q8_0 or
/// Q4_0 (32-element blocks with an fp16 scale). q and k are written in the rotary layout llama.cpp expects for the
/// architecture: interleaved for llama (Hugging Face half-split weights are permuted back), half-split for the others.
/// </summary>
public static class GgufExporter
{
    public static readonly string[] Types = ["f32", "q8_0", "q4_0"];
    const uint Alignment = 32;

    enum TensorType : uint { F32 = 0, Q4_0 = 2, Q8_0 = 8 }

    public static void Export(string modelDir, string type, string outFile, IProgress<string>? progress = null)
    {
        if (!Types.Contains(type)) throw new SioException($"--type must be f32, q8_0 or q4_0, got '{type}'");
        var manifest = ModelManifest.Load(modelDir);
        if (manifest.Dtype != "float32") throw SioException.InFile(modelDir, $"the model is {manifest.Dtype}; export a float32 model (GGUF quantizes on its own: --type q8_0 or q4_0)");
        var c = manifest.Config;
        var tokenizer = TokenizerLoader.LoadFile(Path.Combine(modelDir, manifest.Tokenizer.File), c.VocabSize, c.BosTokenId, c.EosTokenId);
        var model = OnnxModelFile.Read(Path.Combine(modelDir, manifest.ModelFile));
        var inits = model.Graph.Initializer.ToDictionary(t => t.Name);
        float[] Read(string name) => OnnxModelFile.ReadFloats(inits.TryGetValue(name, out var t) ? t : throw SioException.InFile(modelDir, $"tensor {name} not found: not a graph sio built"), modelDir);
        // a linear's weight as (out, in), as GGUF stores it
        float[] Linear(string name, int rows, int cols) => DecoderGraph.Transpose(Read(name), cols, rows);

        var tensors = new List<(string Name, long[] Ne, Func<float[]> Data, bool Quantize)>
        {
            ("token_embd.weight", [c.Dim, c.VocabSize], () => Read("model.embed_tokens.weight"), true),
        };
        bool phi3 = ArchitectureName(c) == "phi3";
        for (int l = 0; l < c.Layers; l++)
        {
            int li = l;
            string P(string m) => $"model.layers.{li}.{m}.weight";
            // llama.cpp rotates Llama pairs interleaved and Qwen pairs half-split (its NEOX mode), each as stored
            float[] Rotary(float[] w, int heads) => Neox(c) == c.RotaryInterleaved
                ? (Neox(c) ? HuggingFaceExporter.InterleavedToHalfSplit(w, heads, c.HeadDim, c.Dim) : HalfSplitToInterleaved(w, heads, c.HeadDim, c.Dim)) : w;
            tensors.Add(($"blk.{l}.attn_norm.weight", [c.Dim], () => Read(P("input_layernorm")), false));
            if (phi3) // llama.cpp's phi3 reads q, k and v as one fused tensor, as Phi-3 stores them
                tensors.Add(($"blk.{l}.attn_qkv.weight", [c.Dim, c.QDim + 2 * c.KvDim], () =>
                    [.. Linear(P("attn.q_proj"), c.QDim, c.Dim), .. Linear(P("attn.k_proj"), c.KvDim, c.Dim), .. Linear(P("attn.v_proj"), c.KvDim, c.Dim)], true));
            else
            {
                tensors.Add(($"blk.{l}.attn_q.weight", [c.Dim, c.QDim], () => Rotary(Linear(P("attn.q_proj"), c.QDim, c.Dim), c.Heads), true));
                tensors.Add(($"blk.{l}.attn_k.weight", [c.Dim, c.KvDim], () => Rotary(Linear(P("attn.k_proj"), c.KvDim, c.Dim), c.KvHeads), true));
                tensors.Add(($"blk.{l}.attn_v.weight", [c.Dim, c.KvDim], () => Linear(P("attn.v_proj"), c.KvDim, c.Dim), true));
            }
            if (c.AttentionBias)
                foreach (var (t, module, n) in new[] { ("q", "q_proj", c.QDim), ("k", "k_proj", c.KvDim), ("v", "v_proj", c.KvDim) })
                    tensors.Add(($"blk.{l}.attn_{t}.bias", [n], () => Read($"model.layers.{li}.attn.{module}.bias"), false));
            if (c.QkNorm)
                foreach (var t in new[] { "q", "k" })
                    tensors.Add(($"blk.{l}.attn_{t}_norm.weight", [c.HeadDim], () => Read(P($"attn.{t}_norm")), false));
            tensors.Add(($"blk.{l}.attn_output.weight", [c.QDim, c.Dim], () => Linear(P("attn.o_proj"), c.Dim, c.QDim), true));
            tensors.Add(($"blk.{l}.ffn_norm.weight", [c.Dim], () => Read(P(c.SandwichNorms ? "pre_feedforward_layernorm" : "post_attention_layernorm")), false));
            if (c.SandwichNorms)
            {
                // Gemma: norms stored as the factors applied (1 + w), as llama.cpp's converter stores them too
                tensors.Add(($"blk.{l}.post_attention_norm.weight", [c.Dim], () => Read(P("post_attention_layernorm")), false));
                tensors.Add(($"blk.{l}.post_ffw_norm.weight", [c.Dim], () => Read(P("post_feedforward_layernorm")), false));
            }
            if (c.Experts > 0)
            {
                // the router, then each projection of every expert stacked into one 3-d tensor, as llama.cpp reads a mixture
                float[] Stacked(string proj, int rows, int cols) =>
                    Enumerable.Range(0, c.Experts).SelectMany(e => Linear(P($"mlp.experts.{e}.{proj}"), rows, cols)).ToArray();
                tensors.Add(($"blk.{l}.ffn_gate_inp.weight", [c.Dim, c.Experts], () => Linear(P("mlp.router"), c.Experts, c.Dim), false));
                tensors.Add(($"blk.{l}.ffn_gate_exps.weight", [c.Dim, c.HiddenDim, c.Experts], () => Stacked("gate_proj", c.HiddenDim, c.Dim), true));
                tensors.Add(($"blk.{l}.ffn_up_exps.weight", [c.Dim, c.HiddenDim, c.Experts], () => Stacked("up_proj", c.HiddenDim, c.Dim), true));
                tensors.Add(($"blk.{l}.ffn_down_exps.weight", [c.HiddenDim, c.Dim, c.Experts], () => Stacked("down_proj", c.Dim, c.HiddenDim), true));
                continue;
            }
            if (phi3) // gate then up in one tensor, as Phi-3's gate_up_proj
                tensors.Add(($"blk.{l}.ffn_up.weight", [c.Dim, 2 * c.HiddenDim], () =>
                    [.. Linear(P("mlp.gate_proj"), c.HiddenDim, c.Dim), .. Linear(P("mlp.up_proj"), c.HiddenDim, c.Dim)], true));
            else
            {
                tensors.Add(($"blk.{l}.ffn_gate.weight", [c.Dim, c.HiddenDim], () => Linear(P("mlp.gate_proj"), c.HiddenDim, c.Dim), true));
                tensors.Add(($"blk.{l}.ffn_up.weight", [c.Dim, c.HiddenDim], () => Linear(P("mlp.up_proj"), c.HiddenDim, c.Dim), true));
            }
            tensors.Add(($"blk.{l}.ffn_down.weight", [c.HiddenDim, c.Dim], () => Linear(P("mlp.down_proj"), c.Dim, c.HiddenDim), true));
        }
        tensors.Add(("output_norm.weight", [c.Dim], () => Read("model.norm.weight"), false));
        if (c.RopeScaling is { Type: "llama3" })
            tensors.Add(("rope_freqs.weight", [c.HeadDim / 2], () => RopeFrequencyFactors(c), false));
        if (c.RopeScaling is { Type: "longrope" } longRope)
        {
            tensors.Add(("rope_factors_long.weight", [c.HeadDim / 2], () => longRope.LongFactors!.Select(f => (float)f).ToArray(), false));
            tensors.Add(("rope_factors_short.weight", [c.HeadDim / 2], () => longRope.ShortFactors!.Select(f => (float)f).ToArray(), false));
        }
        // a tied classifier is token_embd itself, as llama.cpp reads it (Gemma 2 accepts no output.weight at all)
        if (!c.TiedEmbeddings) tensors.Add(("output.weight", [c.Dim, c.VocabSize], () => Linear("lm_head.weight", c.VocabSize, c.Dim), true));

        TensorType TypeOf(long[] ne, bool quantize) =>
            !quantize || type == "f32" || ne[0] % 32 != 0 ? TensorType.F32 : type == "q8_0" ? TensorType.Q8_0 : TensorType.Q4_0;
        long SizeOf(long[] ne, TensorType t)
        {
            long n = ne.Aggregate(1L, (a, b) => a * b);
            return t switch { TensorType.F32 => n * 4, TensorType.Q8_0 => n / 32 * 34, _ => n / 32 * 18 };
        }

        var temp = outFile + $".tmp-{Guid.NewGuid():N}";
        try
        {
            using (var fs = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            using (var w = new BinaryWriter(fs))
            {
                var meta = Metadata(manifest, tokenizer, type);
                w.Write(0x46554747u); // "GGUF"
                w.Write(3u);
                w.Write((ulong)tensors.Count);
                w.Write((ulong)meta.Count);
                foreach (var write in meta) write(w);
                ulong offset = 0;
                foreach (var (name, ne, _, q) in tensors)
                {
                    var t = TypeOf(ne, q);
                    WriteString(w, name);
                    w.Write((uint)ne.Length);
                    foreach (var d in ne) w.Write((ulong)d);
                    w.Write((uint)t);
                    w.Write(offset);
                    offset += (ulong)Align(SizeOf(ne, t));
                }
                Pad(w);
                int i = 0;
                foreach (var (name, ne, data, q) in tensors)
                {
                    progress?.Report($"tensor {++i}/{tensors.Count}");
                    var t = TypeOf(ne, q);
                    var values = data();
                    long start = fs.Position;
                    if (t == TensorType.F32) w.Write(MemoryMarshal.AsBytes(values.AsSpan()));
                    else if (t == TensorType.Q8_0) WriteQ8_0(w, values);
                    else WriteQ4_0(w, values);
                    if (fs.Position - start != SizeOf(ne, t)) throw new InvalidOperationException($"{name}: wrote {fs.Position - start} bytes");
                    Pad(w);
                }
            }
            File.Move(temp, outFile, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    /// <summary>llama.cpp's name for the architecture: Qwen2 (q/k/v biases) and Qwen3 (q/k norms) are its own.</summary>
    static string ArchitectureName(DecoderConfig c) => c.Architecture switch
    {
        "Qwen2ForCausalLM" => "qwen2",
        "Qwen3ForCausalLM" => "qwen3",
        "Gemma2ForCausalLM" => "gemma2",
        "Gemma3ForCausalLM" => "gemma3",
        "Phi3ForCausalLM" => "phi3",
        "Qwen3MoeForCausalLM" => "qwen3moe",
        _ => "llama",
    };

    /// <summary>Whether llama.cpp rotates this architecture's pairs half-split (NEOX) rather than interleaved.</summary>
    static bool Neox(DecoderConfig c) => ArchitectureName(c) != "llama";

    /// <summary>llama.cpp's rope_freqs: per rotary pair, how much the scaled frequency divides the plain one.</summary>
    static float[] RopeFrequencyFactors(DecoderConfig c)
    {
        var plain = RopeScaling.InverseFrequencies(c.RopeTheta, c.HeadDim, null);
        var scaled = RopeScaling.InverseFrequencies(c.RopeTheta, c.HeadDim, c.RopeScaling);
        return plain.Select((f, i) => (float)(f / scaled[i])).ToArray();
    }

    static long Align(long n) => (n + Alignment - 1) / Alignment * Alignment;
    static void Pad(BinaryWriter w) { while (w.BaseStream.Position % Alignment != 0) w.Write((byte)0); }

    internal static void WriteString(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    static List<Action<BinaryWriter>> Metadata(ModelManifest m, Tokenizer tok, string type)
    {
        var c = m.Config;
        var meta = new GgufMetadata();
        var arch = ArchitectureName(c);
        meta.Str("general.architecture", arch);
        meta.Str("general.name", m.Source.Kind + ":" + Path.GetFileName(m.Source.Path));
        meta.U32("general.file_type", type switch { "q8_0" => 7u, "q4_0" => 2u, _ => 0u });
        meta.U32("general.alignment", Alignment);
        meta.U32($"{arch}.context_length", (uint)c.ContextLength);
        meta.U32($"{arch}.embedding_length", (uint)c.Dim);
        meta.U32($"{arch}.block_count", (uint)c.Layers);
        meta.U32($"{arch}.feed_forward_length", (uint)c.HiddenDim);
        meta.U32($"{arch}.rope.dimension_count", (uint)c.HeadDim);
        meta.U32($"{arch}.attention.head_count", (uint)c.Heads);
        meta.U32($"{arch}.attention.head_count_kv", (uint)c.KvHeads);
        meta.U32($"{arch}.attention.key_length", (uint)c.HeadDim);
        meta.U32($"{arch}.attention.value_length", (uint)c.HeadDim);
        meta.F32($"{arch}.attention.layer_norm_rms_epsilon", c.NormEpsilon);
        meta.F32($"{arch}.rope.freq_base", c.RopeTheta);
        if (c.RopeScaling is { Type: "linear" } linear)
        {
            meta.Str($"{arch}.rope.scaling.type", "linear");
            meta.F32($"{arch}.rope.scaling.factor", (float)linear.Factor);
        }
        if (c.RopeScaling is { Type: "longrope" } longRope)
        {
            // llama.cpp takes the long factors when its context exceeds the original one, the short ones otherwise
            meta.F32($"{arch}.rope.scaling.attn_factor", (float)longRope.AttentionFactor);
            meta.U32($"{arch}.rope.scaling.original_context_length", (uint)longRope.OriginalContext);
        }
        meta.U32($"{arch}.vocab_size", (uint)c.VocabSize);
        if (c.Experts > 0)
        {
            meta.U32($"{arch}.expert_count", (uint)c.Experts);
            meta.U32($"{arch}.expert_used_count", (uint)c.ExpertsPerToken);
            if (arch == "qwen3moe") meta.U32($"{arch}.expert_feed_forward_length", (uint)c.HiddenDim);
        }
        if (arch is "gemma2" or "gemma3")
        {
            meta.U32($"{arch}.attention.sliding_window", (uint)(m.SlidingWindow > 0 ? m.SlidingWindow : c.ContextLength));
            if (c.AttentionSoftcap > 0) meta.F32($"{arch}.attn_logit_softcapping", c.AttentionSoftcap);
            if (c.FinalSoftcap > 0) meta.F32($"{arch}.final_logit_softcapping", c.FinalSoftcap);
            meta.U32($"{arch}.attention.sliding_window_pattern", (uint)c.GlobalLayerEvery);
        }
        GgufTokenizer.Write(meta, c, tok);
        return meta.Entries;
    }

    /// <summary>Q8_0: per 32 values an fp16 scale d = max|x| / 127 and 32 int8 codes round(x / d).</summary>
    static void WriteQ8_0(BinaryWriter w, float[] x)
    {
        Span<sbyte> q = stackalloc sbyte[32];
        for (int b = 0; b < x.Length; b += 32)
        {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = MathF.Max(amax, MathF.Abs(x[b + j]));
            float d = amax / 127f, id = d > 0 ? 1f / d : 0;
            for (int j = 0; j < 32; j++) q[j] = (sbyte)MathF.Round(x[b + j] * id);
            w.Write(BitConverter.HalfToUInt16Bits((Half)d));
            w.Write(MemoryMarshal.AsBytes(q));
        }
    }

    /// <summary>Q4_0: per 32 values an fp16 scale d = (the value of largest magnitude) / −8 and 4-bit codes x/d + 8; value j in the low nibble of byte j, value j+16 in its high nibble.</summary>
    static void WriteQ4_0(BinaryWriter w, float[] x)
    {
        Span<byte> qs = stackalloc byte[16];
        for (int b = 0; b < x.Length; b += 32)
        {
            float amax = 0, max = 0;
            for (int j = 0; j < 32; j++) if (MathF.Abs(x[b + j]) > amax) { amax = MathF.Abs(x[b + j]); max = x[b + j]; }
            float d = max / -8f, id = d != 0 ? 1f / d : 0;
            for (int j = 0; j < 16; j++)
            {
                int lo = Math.Min(15, (int)(x[b + j] * id + 8.5f));
                int hi = Math.Min(15, (int)(x[b + j + 16] * id + 8.5f));
                qs[j] = (byte)(lo | (hi << 4));
            }
            w.Write(BitConverter.HalfToUInt16Bits((Half)d));
            w.Write(qs);
        }
    }

    /// <summary>The inverse of <see cref="HuggingFaceExporter.InterleavedToHalfSplit"/>: row p*head/2+i of each head moves to 2i+p.</summary>
    public static float[] HalfSplitToInterleaved(float[] w, int heads, int headDim, int cols)
    {
        var result = new float[w.Length];
        int half = headDim / 2;
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < half; i++)
                for (int p = 0; p < 2; p++)
                    Array.Copy(w, (long)(h * headDim + p * half + i) * cols, result, (long)(h * headDim + 2 * i + p) * cols, cols);
        return result;
    }
}
