using Onnx;
using Sio.Onnx;
using static Sio.Onnx.GraphBuilder;
using DT = Onnx.TensorProto.Types.DataType;

namespace Sio.Models;

/// <summary>
/// Builds the ONNX graph of a Llama-family decoder with ONNX Runtime GenAI's I/O names:
/// <c>input_ids</c>, <c>attention_mask</c>, <c>position_ids</c>, <c>past_key_values.N.key/value</c> in,
/// <c>logits</c>, <c>present.N.key/value</c> out. Attention is GroupQueryAttention, which appends any
/// number of new tokens to a past (or writes in place into a shared past/present buffer), so the
/// same graph serves prefill, decode, speculative verification and rollback.
///
/// Per layer: x = SkipRMSNorm(residual) → q,k,v MatMuls → rotary → GQA → o MatMul →
/// SkipRMSNorm → gate/up MatMuls → SiLU(gate)·up → down MatMul. Weights are stored (in, out).
/// </summary>
public static class DecoderGraph
{
    public const string ModelFile = "model.onnx";
    public const string DataFile = "model.onnx.data";

    /// <summary>True when GroupQueryAttention applies rotary itself (ORT needs head size % 16 == 0 for that).</summary>
    public static bool FusedRotary(DecoderConfig c) => c.HeadDim % 16 == 0;

    public static void Build(ICheckpoint checkpoint, string folder, int slidingWindow = 0, IProgress<string>? progress = null)
    {
        var c = checkpoint.Config;
        using var g = new GraphBuilder(Path.Combine(folder, DataFile));
        g.Input("input_ids", DT.Int64, "batch_size", "sequence_length");
        g.Input("attention_mask", DT.Int64, "batch_size", "total_sequence_length");
        g.Input("position_ids", DT.Int64, "batch_size", "sequence_length");
        for (int i = 0; i < c.Layers; i++)
        {
            g.Input($"past_key_values.{i}.key", DT.Float, "batch_size", c.KvHeads, "past_sequence_length", c.HeadDim);
            g.Input($"past_key_values.{i}.value", DT.Float, "batch_size", c.KvHeads, "past_sequence_length", c.HeadDim);
        }
        g.Output("logits", DT.Float, "batch_size", "sequence_length", c.VocabSize);
        for (int i = 0; i < c.Layers; i++)
        {
            g.Output($"present.{i}.key", DT.Float, "batch_size", c.KvHeads, "total_sequence_length", c.HeadDim);
            g.Output($"present.{i}.value", DT.Float, "batch_size", c.KvHeads, "total_sequence_length", c.HeadDim);
        }

        // seqlens_k = sum(attention_mask) - 1 and total_sequence_length = attention_mask.shape[1], as GQA wants them (int32)
        var maskSum = g.Node("ReduceSum", ["attention_mask", g.Vector("/model/const/axis1", 1)], "/model/attn_mask/ReduceSum", attributes: Attr("keepdims", 0L));
        var seqlens64 = g.Node("Sub", [maskSum, g.Scalar("/model/const/one", 1)], "/model/attn_mask/Sub");
        var seqlensK = g.Node("Cast", [seqlens64], "/model/attn_mask/seqlens_k", attributes: Attr("to", (long)DT.Int32));
        var maskShape = g.Node("Shape", ["attention_mask"], "/model/attn_mask/Shape");
        var total64 = g.Node("Gather", [maskShape, g.Scalar("/model/const/index1", 1)], "/model/attn_mask/Gather", attributes: Attr("axis", 0L));
        var totalLen = g.Node("Cast", [total64], "/model/attn_mask/total_seq_len", attributes: Attr("to", (long)DT.Int32));

        // rotary tables (max_pos, head/2): angle = pos * theta^(-2i/head), with the config's frequency scaling;
        // Gemma 3's sliding-window layers rotate with their own base and no scaling
        (string Cos, string Sin) RotaryTables(string prefix, double theta, RopeScaling? scaling)
        {
            int half = c.HeadDim / 2;
            var cos = new float[c.ContextLength * half];
            var sin = new float[c.ContextLength * half];
            var frequencies = RopeScaling.InverseFrequencies(theta, c.HeadDim, scaling);
            // longrope: the long factors from the original context on (Hugging Face's choice for tokens decoded there)
            var beyond = scaling is { Type: "longrope" } ? RopeScaling.InverseFrequencies(theta, c.HeadDim, scaling, scaling.OriginalContext) : frequencies;
            double magnitude = scaling?.Magnitude ?? 1;
            for (int p = 0; p < c.ContextLength; p++)
            {
                var f = scaling is { Type: "longrope" } && p >= scaling.OriginalContext ? beyond : frequencies;
                for (int i = 0; i < half; i++)
                {
                    double angle = p * f[i];
                    cos[p * half + i] = (float)(Math.Cos(angle) * magnitude);
                    sin[p * half + i] = (float)(Math.Sin(angle) * magnitude);
                }
            }
            return (g.Initializer<float>($"{prefix}cos_cache", cos, DT.Float, c.ContextLength, half), g.Initializer<float>($"{prefix}sin_cache", sin, DT.Float, c.ContextLength, half));
        }
        var (globalCos, globalSin) = RotaryTables("", c.RopeTheta, c.RopeScaling);
        var (localCos, localSin) = c.LocalRopeTheta > 0 ? RotaryTables("local_", c.LocalRopeTheta, null) : (globalCos, globalSin);
        bool fused = FusedRotary(c);

        string Weight(string canonical, string onnxName)
        {
            var w = checkpoint.Read(canonical);
            var shape = CheckpointNames.Shape(c, canonical);
            if (shape.Length == 1) return g.Initializer<float>(onnxName, w, DT.Float, shape[0]);
            var t = Transpose(w, (int)shape[0], (int)shape[1]);
            long elements = t.LongLength;
            w = null!;
            var name = g.Initializer<float>(onnxName, t, DT.Float, shape[1], shape[0]);
            t = null!;
            ReleaseLarge(elements);
            return name;
        }
        // The weights are streamed to the external data file one tensor at a time; a collection after each large one
        // gives their arrays back at once, so the peak memory stays near two copies of the largest tensor
        // instead of growing with the garbage the collector has not yet returned.
        static void ReleaseLarge(long elements)
        {
            if (elements >= 16L << 20) GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        }
        string Linear(string x, int layer, string canonical, string module)
        {
            var w = Weight(CheckpointNames.Layer(layer, canonical), $"model.layers.{layer}.{module}.weight");
            return g.Node("MatMul", [x, w], $"/model/layers.{layer}/{module}/MatMul");
        }

        // Qwen2's q/k/v biases, added after the projection
        string Bias(string x, int layer, string canonical, string module) =>
            g.Node("Add", [x, Weight(CheckpointNames.Layer(layer, canonical), $"model.layers.{layer}.{module}.bias")], $"/model/layers.{layer}/{module}/Add");
        // Qwen3's per-head RMSNorm of q and k before rotary: (batch, seq, heads·head) → (…, heads, head) → norm → back
        string HeadNorm(string x, int layer, string canonical, string module, int heads)
        {
            var p = $"/model/layers.{layer}/{module}";
            var split = g.Node("Reshape", [x, g.Initializer<long>($"{p}/heads_shape", [0, 0, heads, c.HeadDim], DT.Int64, 4)], $"{p}/Reshape");
            var w = Weight(CheckpointNames.Layer(layer, canonical), $"model.layers.{layer}.{module}.weight");
            var normed = g.Node("SimplifiedLayerNormalization", [split, w], $"{p}/SimplifiedLayerNormalization", attributes: [Attr("axis", -1L), Attr("epsilon", c.NormEpsilon), Attr("stash_type", 1L)]);
            return g.Node("Reshape", [normed, g.Initializer<long>($"{p}/model_shape", [0, 0, heads * c.HeadDim], DT.Int64, 3)], $"{p}/Reshape_1");
        }

        // Gemma's softmax scale, query_pre_attn_scalar^-1/2 (GQA's default, 1/sqrt(head), otherwise)
        // and Gemma 2's soft cap on the scores
        global::Onnx.AttributeProto[] AttentionScale() =>
            [.. c.AttentionScale > 0 ? [Attr("scale", c.AttentionScale)] : Array.Empty<global::Onnx.AttributeProto>(),
             .. c.AttentionSoftcap > 0 ? [Attr("softcap", c.AttentionSoftcap)] : Array.Empty<global::Onnx.AttributeProto>()];

        // gate → SiLU (or Gemma's tanh-GELU) → × up → down: the dense feed-forward, or one expert's
        string FeedForward(string x, int layer, string module, string canonicalPrefix)
        {
            var p = $"/model/layers.{layer}/{module}";
            var gate = Linear(x, layer, canonicalPrefix + "w1", $"{module}.gate_proj");
            var up = Linear(x, layer, canonicalPrefix + "w3", $"{module}.up_proj");
            string act;
            if (c.Activation == "gelu_tanh") act = g.Node("FastGelu", [gate], $"{p}/act/FastGelu", "com.microsoft");
            else act = g.Node("Mul", [gate, g.Node("Sigmoid", [gate], $"{p}/act/Sigmoid")], $"{p}/act/Mul");
            return Linear(g.Node("Mul", [act, up], $"{p}/Mul"), layer, canonicalPrefix + "w2", $"{module}.down_proj");
        }

        // Mixtral / Qwen3-MoE: softmax over the router's logits, the top k (renormalized when the family does) as a dense
        // weight per expert, zero for the others; every expert runs and the weighted sum is exact (see ARCHITECTURE.md)
        string MixtureOfExperts(string x, int layer)
        {
            var p = $"/model/layers.{layer}/mlp";
            var probs = g.Node("Softmax", [Linear(x, layer, "router", "mlp.router")], $"{p}/router/Softmax", attributes: Attr("axis", -1L));
            g.Node("TopK", [probs, g.Vector($"{p}/router/k", c.ExpertsPerToken)], $"{p}/router/TopK",
                outputNames: [$"{p}/router/top_weights", $"{p}/router/top_experts"], attributes: Attr("axis", -1L));
            var top = $"{p}/router/top_weights";
            if (c.NormalizeExpertWeights)
                top = g.Node("Div", [top, g.Node("ReduceSum", [top, g.Vector($"{p}/router/axis", -1)], $"{p}/router/ReduceSum", attributes: Attr("keepdims", 1L))], $"{p}/router/Div");
            var zeros = g.Node("Mul", [probs, g.Initializer<float>($"{p}/router/zero", [0f], DT.Float)], $"{p}/router/zeros");
            var weights = g.Node("ScatterElements", [zeros, $"{p}/router/top_experts", top], $"{p}/router/weights", attributes: Attr("axis", -1L));
            string? sum = null;
            for (int e = 0; e < c.Experts; e++)
            {
                var y = FeedForward(x, layer, $"mlp.experts.{e}", $"experts.{e}.");
                var w = g.Node("Slice", [weights, g.Vector($"{p}/experts.{e}/start", e), g.Vector($"{p}/experts.{e}/end", e + 1), g.Vector($"{p}/experts.{e}/axis", -1)], $"{p}/experts.{e}/weight");
                var term = g.Node("Mul", [y, w], $"{p}/experts.{e}/weighted");
                sum = sum is null ? term : g.Node("Add", [sum, term], $"{p}/experts.{e}/sum");
            }
            return sum!;
        }

        // Gemma's norms after attention and after the feed-forward, before the residual add
        string Norm(string x, int layer, string canonical, string module) =>
            g.Node("SimplifiedLayerNormalization", [x, Weight(CheckpointNames.Layer(layer, canonical), $"model.layers.{layer}.{module}.weight")],
                $"/model/layers.{layer}/{module}", attributes: [Attr("axis", -1L), Attr("epsilon", c.NormEpsilon), Attr("stash_type", 1L)]);

        var embed = checkpoint.Read("embed");
        var embedName = g.Initializer<float>("model.embed_tokens.weight", embed, DT.Float, c.VocabSize, c.Dim);
        embed = null;
        ReleaseLarge((long)c.VocabSize * c.Dim);
        string hidden = g.Node("Gather", [embedName, "input_ids"], "/model/embed_tokens/Gather", attributes: Attr("axis", 0L));
        if (c.EmbeddingScale > 0)
            hidden = g.Node("Mul", [hidden, g.Initializer<float>("/model/embed_tokens/scale", [c.EmbeddingScale], DT.Float)], "/model/embed_tokens/Mul");
        string residual = hidden;
        string? pending = null; // output of the previous block, not yet added to the residual
        var eps = Attr("epsilon", c.NormEpsilon);

        (string Normed, string Residual) SkipNorm(string? add, string res, string weight, string name)
        {
            if (add is null)
                return (g.Node("SimplifiedLayerNormalization", [res, weight], name, attributes: [Attr("axis", -1L), eps, Attr("stash_type", 1L)]), res);
            g.Node("SkipSimplifiedLayerNormalization", [add, res, weight], name, "com.microsoft",
                outputNames: [$"{name}/output_0", "", "", $"{name}/output_3"], attributes: eps);
            return ($"{name}/output_0", $"{name}/output_3");
        }

        for (int l = 0; l < c.Layers; l++)
        {
            progress?.Report($"layer {l + 1}/{c.Layers}");
            var (x, res) = SkipNorm(pending, residual, Weight(CheckpointNames.Layer(l, "attn_norm"), $"model.layers.{l}.input_layernorm.weight"),
                $"/model/layers.{l}/input_layernorm");
            residual = res;
            var q = Linear(x, l, "wq", "attn.q_proj");
            var k = Linear(x, l, "wk", "attn.k_proj");
            var v = Linear(x, l, "wv", "attn.v_proj");
            if (c.AttentionBias) (q, k, v) = (Bias(q, l, "bq", "attn.q_proj"), Bias(k, l, "bk", "attn.k_proj"), Bias(v, l, "bv", "attn.v_proj"));
            if (c.QkNorm) (q, k) = (HeadNorm(q, l, "q_norm", "attn.q_norm", c.Heads), HeadNorm(k, l, "k_norm", "attn.k_norm", c.KvHeads));
            bool sliding = c.IsSlidingLayer(l, slidingWindow);
            var (cosCache, sinCache) = sliding ? (localCos, localSin) : (globalCos, globalSin);
            if (!fused)
            {
                q = g.Node("RotaryEmbedding", [q, "position_ids", cosCache, sinCache], $"/model/layers.{l}/attn/q_rotary", "com.microsoft",
                    attributes: [Attr("interleaved", c.RotaryInterleaved ? 1L : 0L), Attr("num_heads", (long)c.Heads)]);
                k = g.Node("RotaryEmbedding", [k, "position_ids", cosCache, sinCache], $"/model/layers.{l}/attn/k_rotary", "com.microsoft",
                    attributes: [Attr("interleaved", c.RotaryInterleaved ? 1L : 0L), Attr("num_heads", (long)c.KvHeads)]);
            }
            var gqaInputs = new List<string> { q, k, v, $"past_key_values.{l}.key", $"past_key_values.{l}.value", seqlensK, totalLen };
            if (fused) gqaInputs.AddRange([cosCache, sinCache]);
            var attn = g.Node("GroupQueryAttention", gqaInputs.ToArray(), $"/model/layers.{l}/attn/GroupQueryAttention", "com.microsoft",
                outputNames: [$"/model/layers.{l}/attn/output", $"present.{l}.key", $"present.{l}.value"],
                attributes: [Attr("num_heads", (long)c.Heads), Attr("kv_num_heads", (long)c.KvHeads), Attr("do_rotary", fused ? 1L : 0L),
                    Attr("rotary_interleaved", c.RotaryInterleaved ? 1L : 0L), Attr("local_window_size", sliding ? slidingWindow : -1L),
                    .. AttentionScale()]);
            var o = Linear(attn, l, "wo", "attn.o_proj");
            if (c.SandwichNorms) o = Norm(o, l, "post_attn_norm", "post_attention_layernorm");

            var ffnNorm = c.SandwichNorms ? "pre_feedforward_layernorm" : "post_attention_layernorm";
            (x, residual) = SkipNorm(o, residual, Weight(CheckpointNames.Layer(l, "ffn_norm"), $"model.layers.{l}.{ffnNorm}.weight"), $"/model/layers.{l}/{ffnNorm}");
            pending = c.Experts > 0 ? MixtureOfExperts(x, l) : FeedForward(x, l, "mlp", "");
            if (c.SandwichNorms) pending = Norm(pending, l, "post_ffn_norm", "post_feedforward_layernorm");
        }
        var (final, _) = SkipNorm(pending, residual, Weight("norm", "model.norm.weight"), "/model/norm");
        progress?.Report("classifier");
        var head = Weight("lm_head", "lm_head.weight");
        if (c.FinalSoftcap > 0)
        {
            // Gemma 2: logits = cap · tanh(logits / cap)
            var raw = g.Node("MatMul", [final, head], "/lm_head/MatMul");
            var cap = g.Initializer<float>("/lm_head/softcap", [c.FinalSoftcap], DT.Float);
            var tanh = g.Node("Tanh", [g.Node("Div", [raw, cap], "/lm_head/softcap/Div")], "/lm_head/softcap/Tanh");
            g.Node("Mul", [tanh, cap], "/lm_head/softcap/Mul", outputNames: ["logits"]);
        }
        else g.Node("MatMul", [final, head], "/lm_head/MatMul", outputNames: ["logits"]);
        g.Save(Path.Combine(folder, ModelFile), [("producer", "sio"), ("architecture", c.Architecture)]);
    }

    /// <summary>(rows, cols) → (cols, rows), blocked for the cache.</summary>
    public static float[] Transpose(float[] w, int rows, int cols)
    {
        var t = new float[w.Length];
        const int B = 32;
        for (int r0 = 0; r0 < rows; r0 += B)
            for (int c0 = 0; c0 < cols; c0 += B)
                for (int r = r0; r < Math.Min(r0 + B, rows); r++)
                    for (int col = c0; col < Math.Min(c0 + B, cols); col++)
                        t[(long)col * rows + r] = w[(long)r * cols + col];
        return t;
    }
}
