using System.Text.Json.Nodes;

namespace Sio.Models;

/// <summary>
/// Writes a checkpoint as a Hugging Face Llama folder (config.json + model.safetensors, float32).
/// Interleaved rotary weights are permuted into Hugging Face's half-split layout.
/// </summary>
public static class HuggingFaceExporter
{
    /// <param name="dtype">F32, F16 or BF16.</param>
    /// <param name="shards">How many .safetensors files to split the weights over (with model.safetensors.index.json when more than one).</param>
    public static void Export(ICheckpoint checkpoint, string folder, string dtype = "F32", int shards = 1, Tokenization.SentencePieceBpeTokenizer? tokenizer = null)
    {
        var c = checkpoint.Config;
        Directory.CreateDirectory(folder);
        var tensors = new List<(string, long[], float[])>();
        var fusedParts = new Dictionary<string, (long[] Shape, SortedList<long, float[]> Parts)>();
        foreach (var name in HuggingFaceCheckpoint.CanonicalNames(c))
        {
            var data = checkpoint.Read(name);
            var kind = name.Split('.')[^1];
            if (c.RotaryInterleaved && kind is "wq" or "wk")
                data = InterleavedToHalfSplit(data, kind == "wq" ? c.Heads : c.KvHeads, c.HeadDim, c.Dim);
            if (HuggingFaceCheckpoint.FusedSource(c, name) is { } fused)
            {
                if (!fusedParts.TryGetValue(fused.Tensor, out var entry)) fusedParts[fused.Tensor] = entry = (fused.Shape, new());
                entry.Parts.Add(fused.FirstRow, data);
            }
            else
            {
                if (c.SandwichNorms && HuggingFaceCheckpoint.IsNorm(name)) data = data.Select(v => v - 1).ToArray(); // stored as w, applied as 1 + w
                tensors.Add((HuggingFaceCheckpoint.HfName(name, c), CheckpointNames.Shape(c, name), data));
            }
        }
        foreach (var (name, (shape, parts)) in fusedParts) tensors.Add((name, shape, parts.Values.SelectMany(p => p).ToArray()));
        var meta = new Dictionary<string, string> { ["format"] = "pt" };
        if (shards <= 1) SafetensorsFile.Write(Path.Combine(folder, "model.safetensors"), tensors, meta, dtype);
        else
        {
            var weightMap = new JsonObject();
            int per = (tensors.Count + shards - 1) / shards;
            for (int s = 0; s < shards; s++)
            {
                var name = $"model-{s + 1:D5}-of-{shards:D5}.safetensors";
                var part = tensors.Skip(s * per).Take(per).ToList();
                SafetensorsFile.Write(Path.Combine(folder, name), part, meta, dtype);
                foreach (var (t, _, _) in part) weightMap[t] = name;
            }
            File.WriteAllText(Path.Combine(folder, "model.safetensors.index.json"),
                new JsonObject { ["metadata"] = new JsonObject(), ["weight_map"] = weightMap }.ToJsonString(new() { WriteIndented = true }));
        }
        tokenizer?.WriteTokenizerJson(Path.Combine(folder, "tokenizer.json"));
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray(c.Architecture),
            ["model_type"] = c.Architecture switch
            {
                "MistralForCausalLM" => "mistral",
                "Qwen2ForCausalLM" => "qwen2",
                "Qwen3ForCausalLM" => "qwen3",
                "Phi3ForCausalLM" => "phi3",
                "Gemma2ForCausalLM" => "gemma2",
                "Gemma3ForCausalLM" => "gemma3_text",
                "MixtralForCausalLM" => "mixtral",
                "Qwen3MoeForCausalLM" => "qwen3_moe",
                _ => "llama"
            },
            ["hidden_size"] = c.Dim,
            ["intermediate_size"] = c.HiddenDim,
            ["num_hidden_layers"] = c.Layers,
            ["num_attention_heads"] = c.Heads,
            ["num_key_value_heads"] = c.KvHeads,
            ["head_dim"] = c.HeadDim,
            ["vocab_size"] = c.VocabSize,
            ["max_position_embeddings"] = c.ContextLength,
            ["rms_norm_eps"] = c.NormEpsilon,
            ["rope_theta"] = c.RopeTheta,
            ["rope_scaling"] = RopeScalingJson(c),
            ["tie_word_embeddings"] = c.TiedEmbeddings,
            ["bos_token_id"] = c.BosTokenId,
            ["eos_token_id"] = c.EosTokenId,
            ["hidden_act"] = c.Activation == "gelu_tanh" ? "gelu_pytorch_tanh" : "silu",
            ["torch_dtype"] = dtype switch { "F16" => "float16", "BF16" => "bfloat16", _ => "float32" },
        };
        if (c.RopeScaling is { Type: "longrope" } longRope) config["original_max_position_embeddings"] = longRope.OriginalContext;
        if (c.SandwichNorms)
        {
            config["hidden_activation"] = config["hidden_act"]!.DeepClone();
            config["query_pre_attn_scalar"] = c.AttentionScale > 0 ? Math.Round(1 / ((double)c.AttentionScale * c.AttentionScale)) : c.HeadDim;
        }
        if (c.Architecture == "Gemma3ForCausalLM")
        {
            config["sliding_window_pattern"] = c.GlobalLayerEvery;
            config["rope_local_base_freq"] = c.LocalRopeTheta;
        }
        if (c.Architecture == "MixtralForCausalLM") { config["num_local_experts"] = c.Experts; config["num_experts_per_tok"] = c.ExpertsPerToken; }
        if (c.Architecture == "Qwen3MoeForCausalLM")
        {
            (config["num_experts"], config["num_experts_per_tok"], config["moe_intermediate_size"]) = (c.Experts, c.ExpertsPerToken, c.HiddenDim);
            config["norm_topk_prob"] = c.NormalizeExpertWeights;
        }
        if (c.Architecture == "Gemma2ForCausalLM")
        {
            config["attn_logit_softcapping"] = c.AttentionSoftcap > 0 ? c.AttentionSoftcap : null;
            config["final_logit_softcapping"] = c.FinalSoftcap > 0 ? c.FinalSoftcap : null;
        }
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString(new() { WriteIndented = true }));
    }

    /// <summary>rope_scaling as each family writes it (Phi-3's longrope with its factor lists; the attention factor only when it is not the one implied by the contexts).</summary>
    static JsonObject? RopeScalingJson(DecoderConfig c) => c.RopeScaling switch
    {
        null => null,
        { Type: "linear" } r => new JsonObject { ["rope_type"] = "linear", ["factor"] = r.Factor },
        { Type: "longrope" } r => WithAttentionFactor(new JsonObject
        {
            ["type"] = "longrope",
            ["short_factor"] = new JsonArray(r.ShortFactors!.Select(f => (JsonNode)f).ToArray()),
            ["long_factor"] = new JsonArray(r.LongFactors!.Select(f => (JsonNode)f).ToArray()),
        }, r, c.ContextLength),
        { } r => new JsonObject { ["rope_type"] = r.Type, ["factor"] = r.Factor, ["low_freq_factor"] = r.LowFreqFactor, ["high_freq_factor"] = r.HighFreqFactor, ["original_max_position_embeddings"] = r.OriginalContext },
    };

    static JsonObject WithAttentionFactor(JsonObject o, RopeScaling r, int maxPositions)
    {
        if (r.AttentionFactor != RopeScaling.LongRopeAttentionFactor(maxPositions, r.OriginalContext)) o["attention_factor"] = r.AttentionFactor;
        return o;
    }

    /// <summary>Row 2i+p of each head moves to p*head/2+i: the permutation Hugging Face applies to Meta's q and k.</summary>
    public static float[] InterleavedToHalfSplit(float[] w, int heads, int headDim, int cols)
    {
        var result = new float[w.Length];
        int half = headDim / 2;
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < half; i++)
                for (int p = 0; p < 2; p++)
                    Array.Copy(w, (long)(h * headDim + 2 * i + p) * cols, result, (long)(h * headDim + p * half + i) * cols, cols);
        return result;
    }
}
