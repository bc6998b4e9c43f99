using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sio.Models;

/// <summary>
/// A Hugging Face Llama-family folder: <c>config.json</c> plus one or more <c>*.safetensors</c>
/// (sharded through <c>model.safetensors.index.json</c> or not), F32, F16 or BF16. Rotary is
/// half-split, as Hugging Face stores q and k.
/// </summary>
public sealed class HuggingFaceCheckpoint : ICheckpoint
{
    public static readonly string[] SupportedArchitectures = ["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "Phi3ForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM", "MixtralForCausalLM", "Qwen3MoeForCausalLM"];
    const string Gemma2 = "Gemma2ForCausalLM", Gemma3 = "Gemma3ForCausalLM";

    readonly List<SafetensorsFile> _files = new();
    readonly Dictionary<string, (SafetensorsFile File, string Name)> _index = new();

    public DecoderConfig Config { get; }
    public string Source { get; }
    /// <summary>config.json's eos_token_id, as a list (Llama 3.1 names several); the first is the config's EOS.</summary>
    public IReadOnlyList<int> EosTokenIds { get; }
    /// <summary>Mistral's sliding attention window, or 0 for full attention.</summary>
    public int SlidingWindow { get; }

    public HuggingFaceCheckpoint(string folder)
    {
        Source = folder;
        var configPath = Path.Combine(folder, "config.json");
        if (!File.Exists(configPath)) throw SioException.InFile(configPath, "file not found (a Hugging Face model folder needs config.json)");
        var cfg = ConfigJson.Load(configPath);
        var archs = cfg.Strings("architectures");
        var arch = archs.FirstOrDefault(SupportedArchitectures.Contains);
        if (arch is null && archs.FirstOrDefault(a => a.EndsWith("ForConditionalGeneration")) is { } multimodal)
            throw SioException.InFile(configPath, $"{multimodal} is a multimodal checkpoint whose language model sio cannot separate from it; import a text-only {string.Join(", ", SupportedArchitectures)} folder");
        if (arch is null)
            throw SioException.InFile(configPath, $"unsupported architecture {(archs.Length == 0 ? "(none given)" : string.Join(", ", archs))}; sio imports {string.Join(" and ", SupportedArchitectures)}");
        int heads = cfg.Int("num_attention_heads", max: 1 << 12);
        var ropeScaling = ReadRopeScaling(cfg, arch, cfg.Int("head_dim", cfg.Int("hidden_size", max: 1 << 16) / heads, min: 1, max: 1 << 12));
        foreach (var biasFlag in new[] { "attention_bias", "mlp_bias" })
            if (cfg.Bool(biasFlag, false)) throw SioException.InFile(configPath, $"unsupported {biasFlag}=true: sio builds q/k/v biases for Qwen2 only, and no output or feed-forward biases");
        if (cfg.Bool("use_sliding_window", false))
            throw SioException.InFile(configPath, "unsupported use_sliding_window=true: sio builds Qwen layers with full attention");
        if (cfg.Has("partial_rotary_factor") && cfg.Number("partial_rotary_factor", 1) != 1)
            throw SioException.InFile(configPath, $"unsupported partial_rotary_factor {cfg.Number("partial_rotary_factor", 1)}: sio rotates every dimension of a head");
        bool gemma = arch is Gemma2 or Gemma3;
        string act = cfg.String("hidden_activation") ?? cfg.String("hidden_act") ?? "silu";
        if (act != (gemma ? "gelu_pytorch_tanh" : "silu"))
            throw SioException.InFile(configPath, $"unsupported activation {act}: sio builds {(gemma ? "Gemma's tanh-approximated GeGLU" : "SiLU-gated")} feed-forward layers");
        if (arch != Gemma2)
            foreach (var cap in new[] { "attn_logit_softcapping", "final_logit_softcapping" })
                if (cfg.Has(cap)) throw SioException.InFile(configPath, $"unsupported {cap}: sio builds logit soft-capping for Gemma 2 only");

        int vocab = cfg.Int("vocab_size", max: 1 << 22);
        EosTokenIds = cfg.Ids("eos_token_id", vocab);
        Config = new DecoderConfig
        {
            Dim = cfg.Int("hidden_size", max: 1 << 16),
            HiddenDim = arch == "Qwen3MoeForCausalLM" ? cfg.Int("moe_intermediate_size", max: 1 << 18) : cfg.Int("intermediate_size", max: 1 << 18),
            Layers = cfg.Int("num_hidden_layers", max: 1 << 10),
            Heads = heads,
            KvHeads = cfg.Int("num_key_value_heads", heads, max: 1 << 12),
            VocabSize = vocab,
            ContextLength = cfg.Int("max_position_embeddings", 2048, max: 1 << 24),
            HeadSize = cfg.Int("head_dim", 0, min: 0, max: 1 << 12),
            RopeTheta = (float)cfg.Number("rope_theta", 10000, max: 1e12),
            RopeScaling = ropeScaling,
            NormEpsilon = (float)cfg.Number("rms_norm_eps", 1e-6, max: 1),
            RotaryInterleaved = false,
            TiedEmbeddings = cfg.Bool("tie_word_embeddings", gemma),
            AttentionBias = arch == "Qwen2ForCausalLM",
            QkNorm = arch is "Qwen3ForCausalLM" or "Qwen3MoeForCausalLM" or Gemma3,
            Experts = ExpertCount(cfg, arch),
            ExpertsPerToken = arch.EndsWith("MoeForCausalLM") || arch == "MixtralForCausalLM" ? cfg.Int("num_experts_per_tok", 2, max: 1 << 10) : 0,
            NormalizeExpertWeights = arch != "Qwen3MoeForCausalLM" || cfg.Bool("norm_topk_prob", false),
            AttentionSoftcap = arch == Gemma2 ? (float)cfg.Number("attn_logit_softcapping", 0, max: 1e6, zero: true) : 0,
            FinalSoftcap = arch == Gemma2 ? (float)cfg.Number("final_logit_softcapping", 0, max: 1e6, zero: true) : 0,
            EmbeddingScale = gemma ? MathF.Sqrt(cfg.Int("hidden_size", max: 1 << 16)) : 0,
            SandwichNorms = gemma,
            Activation = gemma ? "gelu_tanh" : "silu",
            AttentionScale = gemma ? (float)(1 / Math.Sqrt(cfg.Number("query_pre_attn_scalar", 256, max: 1 << 20))) : 0,
            // Gemma 2 alternates sliding and global layers, one rotary base; Gemma 3 has a pattern and a local base
            GlobalLayerEvery = arch == Gemma2 ? 2 : arch == Gemma3 ? GlobalLayerEvery(cfg) : 0,
            LocalRopeTheta = arch == Gemma3 ? (float)cfg.Number("rope_local_base_freq", 10000, max: 1e12) : 0,
            BosTokenId = cfg.Ids("bos_token_id", vocab).FirstOrDefault(1),
            EosTokenId = EosTokenIds.FirstOrDefault(2),
            Architecture = arch,
        }.Validate(configPath);
        // Qwen configs carry a sliding_window that applies only with use_sliding_window (refused above)
        SlidingWindow = cfg.Has("sliding_window") && !arch.StartsWith("Qwen") ? cfg.Int("sliding_window", max: int.MaxValue) : 0;
        if (SlidingWindow >= Config.ContextLength) SlidingWindow = 0;

        try
        {
            var indexPath = Path.Combine(folder, "model.safetensors.index.json");
            IEnumerable<string> shards;
            if (File.Exists(indexPath))
            {
                var map = ConfigJson.Load(indexPath).Object("weight_map") ?? throw SioException.InFile(indexPath, "no \"weight_map\"");
                shards = map.Select(kv => kv.Value is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>()
                    : throw SioException.InFile(indexPath, $"\"weight_map\" entry {kv.Key} must name a shard file (a string)")).Distinct().ToList();
            }
            else shards = Directory.GetFiles(folder, "*.safetensors").Select(Path.GetFileName).Order()!;
            foreach (var shard in shards)
            {
                if (shard.Contains("..") || Path.IsPathRooted(shard)) throw SioException.InFile(indexPath, $"shard name {shard} leaves the folder");
                var f = new SafetensorsFile(Path.Combine(folder, shard));
                _files.Add(f);
                foreach (var name in f.Tensors.Keys) _index[name] = (f, name);
            }
            if (_files.Count == 0) throw SioException.InFile(folder, "no *.safetensors weights found");
            CheckTensors();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The Hugging Face name of a canonical tensor.</summary>
    /// <summary>The Hugging Face name of a canonical tensor; Gemma's pre-feed-forward norm has its own name.</summary>
    public static string HfName(string canonical, DecoderConfig? c = null)
    {
        if (c is { SandwichNorms: true } && canonical.EndsWith(".ffn_norm")) return $"model.layers.{canonical.Split('.')[1]}.pre_feedforward_layernorm.weight";
        if (c is { Experts: > 0 } && canonical.StartsWith("layers.") && ExpertName(c, canonical) is { } expert) return expert;
        if (canonical == "embed") return "model.embed_tokens.weight";
        if (canonical == "norm") return "model.norm.weight";
        if (canonical == "lm_head") return "lm_head.weight";
        var p = canonical.Split('.');
        var layer = $"model.layers.{p[1]}.";
        return layer + p[2] switch
        {
            "attn_norm" => "input_layernorm.weight",
            "post_attn_norm" => "post_attention_layernorm.weight",
            "post_ffn_norm" => "post_feedforward_layernorm.weight",
            "bq" => "self_attn.q_proj.bias",
            "bk" => "self_attn.k_proj.bias",
            "bv" => "self_attn.v_proj.bias",
            "q_norm" => "self_attn.q_norm.weight",
            "k_norm" => "self_attn.k_norm.weight",
            "ffn_norm" => "post_attention_layernorm.weight",
            "wq" => "self_attn.q_proj.weight",
            "wk" => "self_attn.k_proj.weight",
            "wv" => "self_attn.v_proj.weight",
            "wo" => "self_attn.o_proj.weight",
            "w1" => "mlp.gate_proj.weight",
            "w2" => "mlp.down_proj.weight",
            "w3" => "mlp.up_proj.weight",
            _ => throw new ArgumentException(canonical),
        };
    }

    public static IEnumerable<string> CanonicalNames(DecoderConfig c)
    {
        yield return "embed";
        for (int i = 0; i < c.Layers; i++)
            foreach (var t in CheckpointNames.LayerTensorsOf(c)) yield return CheckpointNames.Layer(i, t);
        yield return "norm";
        if (!c.TiedEmbeddings) yield return "lm_head";
    }

    void CheckTensors()
    {
        var expected = new HashSet<string>();
        foreach (var canonical in CanonicalNames(Config))
        {
            var fused = FusedSource(Config, canonical);
            var hf = fused?.Tensor ?? HfName(canonical, Config);
            expected.Add(hf);
            if (!_index.TryGetValue(hf, out var at)) throw SioException.InFile(Source, $"tensor {hf} is missing");
            var shape = fused?.Shape ?? CheckpointNames.Shape(Config, canonical);
            var actual = at.File.Tensors[hf].Shape;
            if (!shape.SequenceEqual(actual))
                throw SioException.InFile(at.File.Path, $"tensor {hf} has shape [{string.Join(",", actual)}], config.json implies [{string.Join(",", shape)}]");
        }
        var extra = _index.Keys.FirstOrDefault(k => !expected.Contains(k) && !k.EndsWith("rotary_emb.inv_freq") && !(k == "lm_head.weight" && Config.TiedEmbeddings));
        if (extra is not null) throw SioException.InFile(_index[extra].File.Path, $"unsupported tensor {extra}: not part of a {Config.Architecture} that sio builds");
    }

    public float[] Read(string name)
    {
        if (name == "lm_head" && Config.TiedEmbeddings) name = "embed";
        if (FusedSource(Config, name) is { } fused)
        {
            if (_lastFused.Name != fused.Tensor) _lastFused = (fused.Tensor, _index[fused.Tensor].File.ReadFloats(fused.Tensor));
            var shape = CheckpointNames.Shape(Config, name);
            return _lastFused.Data.AsSpan((int)(fused.FirstRow * shape[1]), (int)(shape[0] * shape[1])).ToArray();
        }
        var (file, hf) = _index[HfName(name, Config)];
        var values = file.ReadFloats(hf);
        if (Config.Architecture is Gemma2 or Gemma3 && IsNorm(name)) for (int i = 0; i < values.Length; i++) values[i] += 1; // Gemma's RMSNorm scales by 1 + w
        return values;
    }

    /// <summary>A router or expert tensor's name: Mixtral's block_sparse_moe, Qwen3-MoE's mlp.</summary>
    static string? ExpertName(DecoderConfig c, string canonical)
    {
        var p = canonical.Split('.');
        bool mixtral = c.Architecture == "MixtralForCausalLM";
        var moe = $"model.layers.{p[1]}.{(mixtral ? "block_sparse_moe" : "mlp")}";
        if (p[2] == "router") return $"{moe}.gate.weight";
        if (p[2] != "experts") return null;
        var w = mixtral ? p[4] : p[4] switch { "w1" => "gate_proj", "w2" => "down_proj", _ => "up_proj" };
        return $"{moe}.experts.{p[3]}.{w}.weight";
    }

    /// <summary>Whether a canonical tensor is an RMSNorm weight.</summary>
    public static bool IsNorm(string canonical) => canonical == "norm" || canonical.EndsWith("_norm");

    (string? Name, float[] Data) _lastFused = (null, []);

    /// <summary>
    /// Phi-3 stores q, k and v as one qkv_proj and gate and up as one gate_up_proj: such a canonical tensor is a block of
    /// rows of the stored one, given with the stored tensor's name and shape. Null for tensors stored as they are.
    /// </summary>
    public static (string Tensor, long FirstRow, long[] Shape)? FusedSource(DecoderConfig c, string canonical)
    {
        if (c.Architecture != "Phi3ForCausalLM" || !canonical.StartsWith("layers.")) return null;
        var p = canonical.Split('.');
        var layer = $"model.layers.{p[1]}.";
        long[] qkv = [c.QDim + 2L * c.KvDim, c.Dim], gateUp = [2L * c.HiddenDim, c.Dim];
        return p[2] switch
        {
            "wq" => (layer + "self_attn.qkv_proj.weight", 0, qkv),
            "wk" => (layer + "self_attn.qkv_proj.weight", c.QDim, qkv),
            "wv" => (layer + "self_attn.qkv_proj.weight", c.QDim + c.KvDim, qkv),
            "w1" => (layer + "mlp.gate_up_proj.weight", 0, gateUp),
            "w3" => (layer + "mlp.gate_up_proj.weight", c.HiddenDim, gateUp),
            _ => null,
        };
    }

    /// <summary>Experts per layer: Mixtral's num_local_experts, Qwen3-MoE's num_experts (every layer sparse); 0 for dense models.</summary>
    static int ExpertCount(ConfigJson cfg, string arch)
    {
        if (arch == "MixtralForCausalLM") return cfg.Int("num_local_experts", 8, max: 1 << 12);
        if (arch != "Qwen3MoeForCausalLM") return 0;
        if (cfg.Int("decoder_sparse_step", 1, max: 1 << 10) != 1 || (cfg.Has("mlp_only_layers") && cfg["mlp_only_layers"] is System.Text.Json.Nodes.JsonArray { Count: > 0 }))
            throw SioException.InFile(cfg.Path, "unsupported decoder_sparse_step/mlp_only_layers: sio builds every Qwen3-MoE layer sparse");
        return cfg.Int("num_experts", max: 1 << 12);
    }

    /// <summary>Gemma 3: every Nth layer is global, from sliding_window_pattern or from a regular layer_types list.</summary>
    static int GlobalLayerEvery(ConfigJson cfg)
    {
        var types = cfg.Has("layer_types") ? cfg.Strings("layer_types") : [];
        if (types.Length == 0) return cfg.Int("sliding_window_pattern", 6, max: 1 << 10);
        int every = Array.IndexOf(types, "full_attention") + 1;
        for (int i = 0; i < types.Length; i++)
            if (every == 0 || types[i] != ((i + 1) % every == 0 ? "full_attention" : "sliding_attention"))
                throw SioException.InFile(cfg.Path, "unsupported layer_types: sio builds every Nth layer global and the others sliding_attention");
        return every;
    }

    /// <summary>rope_scaling: null, "linear", "llama3" (Llama 3.1–3.3) or "longrope" (Phi-3/3.5); any other kind is refused by name.</summary>
    static RopeScaling? ReadRopeScaling(ConfigJson cfg, string arch, int headDim)
    {
        if (cfg.Nested("rope_scaling") is not { } s) return null;
        var type = s.String("rope_scaling.rope_type") ?? s.String("rope_scaling.type");
        if (type is null or "default") return null;
        if (type == "su") type = "longrope"; // the name the first Phi-3 128k configs gave it
        if (!RopeScaling.Types.Contains(type))
            throw SioException.InFile(cfg.Path, $"unsupported rope_scaling type \"{type}\" (sio builds {string.Join(", ", RopeScaling.Types)})");
        if (type == "longrope") return ReadLongRope(cfg, s, arch, headDim);
        double factor = s.Number("rope_scaling.factor", 1, max: 1024);
        if (type == "linear") return new RopeScaling(type, factor);
        var (low, high) = (s.Number("rope_scaling.low_freq_factor", 1, max: 1024), s.Number("rope_scaling.high_freq_factor", 4, max: 1024));
        if (high <= low) throw SioException.InFile(cfg.Path, $"rope_scaling: high_freq_factor {high} must exceed low_freq_factor {low}");
        return new RopeScaling(type, factor, low, high, s.Int("rope_scaling.original_max_position_embeddings", 8192, max: 1 << 24));
    }

    /// <summary>
    /// Phi-3/3.5's longrope: a short and a long factor per rotary pair, the original context they switch at (top-level
    /// original_max_position_embeddings, as Phi-3 writes it, or inside rope_scaling) and the attention factor (given, or
    /// computed from the two contexts as Hugging Face and llama.cpp compute it).
    /// </summary>
    static RopeScaling ReadLongRope(ConfigJson cfg, ConfigJson s, string arch, int headDim)
    {
        if (arch != "Phi3ForCausalLM")
            throw SioException.InFile(cfg.Path, $"unsupported rope_scaling type \"longrope\" for {arch}: sio builds it for Phi3ForCausalLM");
        int maxPositions = cfg.Int("max_position_embeddings", 2048, max: 1 << 24);
        int original = cfg.Has("original_max_position_embeddings")
            ? cfg.Int("original_max_position_embeddings", max: 1 << 24)
            : s.Int("rope_scaling.original_max_position_embeddings", max: 1 << 24);
        if (original > maxPositions)
            throw SioException.InFile(cfg.Path, $"original_max_position_embeddings {original} exceeds max_position_embeddings {maxPositions}");
        var shortFactors = s.Numbers("rope_scaling.short_factor", headDim / 2, max: 1e6);
        var longFactors = s.Numbers("rope_scaling.long_factor", headDim / 2, max: 1e6);
        double attention = s.Number("rope_scaling.attention_factor", RopeScaling.LongRopeAttentionFactor(maxPositions, original), max: 100);
        return new RopeScaling("longrope", (double)maxPositions / original, OriginalContext: original,
            ShortFactors: shortFactors, LongFactors: longFactors, AttentionFactor: attention);
    }

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
    }
}
