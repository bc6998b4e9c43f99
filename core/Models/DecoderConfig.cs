namespace Sio.Models;

/// <summary>
/// The blueprint of a Llama-family decoder: every shape the graph builder, the generator and the
/// manifest need. Weights live elsewhere (<see cref="ICheckpoint"/>).
/// </summary>
public sealed record DecoderConfig
{
    public required int Dim { get; init; }            // model width
    public required int HiddenDim { get; init; }      // feed-forward width
    public required int Layers { get; init; }
    public required int Heads { get; init; }          // query heads
    public required int KvHeads { get; init; }        // key/value heads (GQA when fewer than Heads)
    public required int VocabSize { get; init; }
    public required int ContextLength { get; init; }  // longest sequence the rotary tables cover
    public int HeadSize { get; init; }                // 0 means Dim / Heads
    public float RopeTheta { get; init; } = 10000f;
    /// <summary>Rotary frequency scaling (Llama 3.1's "llama3", or "linear"); null for plain rotary.</summary>
    public RopeScaling? RopeScaling { get; init; }
    public float NormEpsilon { get; init; } = 1e-5f;
    /// <summary>True when rotary pairs are adjacent (llama2.c, Meta); false for the half-split convention (Hugging Face).</summary>
    public bool RotaryInterleaved { get; init; }
    /// <summary>q, k and v projections carry biases (Qwen2 / Qwen2.5).</summary>
    public bool AttentionBias { get; init; }
    /// <summary>q and k are RMS-normalized per head before rotary (Qwen3).</summary>
    public bool QkNorm { get; init; }
    /// <summary>Gemma: the token embedding is multiplied by this (√hidden) before the first layer; 0 for none.</summary>
    public float EmbeddingScale { get; init; }
    /// <summary>Gemma: RMSNorms after attention and after the feed-forward too, before each is added to the residual.</summary>
    public bool SandwichNorms { get; init; }
    /// <summary>The feed-forward gate's activation: "silu" (SwiGLU) or "gelu_tanh" (Gemma's GeGLU, tanh-approximated GELU).</summary>
    public string Activation { get; init; } = "silu";
    /// <summary>Attention's softmax scale; 0 means 1/√head (Gemma: query_pre_attn_scalar^-½).</summary>
    public float AttentionScale { get; init; }
    /// <summary>Gemma 3: every Nth layer attends globally with RopeTheta, the others within the sliding window with LocalRopeTheta; 0: every layer alike.</summary>
    public int GlobalLayerEvery { get; init; }
    /// <summary>Sparse mixture of experts (Mixtral, Qwen3-MoE): experts per layer, 0 for a dense feed-forward; HiddenDim is each expert's width.</summary>
    public int Experts { get; init; }
    /// <summary>Experts each token is routed to (top-k of the router's softmax).</summary>
    public int ExpertsPerToken { get; init; }
    /// <summary>Whether the top-k routing weights are renormalized to sum to 1 (Mixtral; Qwen3-MoE's norm_topk_prob).</summary>
    public bool NormalizeExpertWeights { get; init; } = true;
    /// <summary>Gemma 2: attention scores become cap·tanh(score/cap) before the softmax; 0 for none.</summary>
    public float AttentionSoftcap { get; init; }
    /// <summary>Gemma 2: logits become cap·tanh(logit/cap); 0 for none.</summary>
    public float FinalSoftcap { get; init; }
    /// <summary>Gemma 3: the rotary base of the sliding-window layers.</summary>
    public float LocalRopeTheta { get; init; }
    /// <summary>True when the classifier shares the token embedding.</summary>
    public bool TiedEmbeddings { get; init; }
    public int BosTokenId { get; init; } = 1;
    public int EosTokenId { get; init; } = 2;
    /// <summary>The architecture name as Hugging Face spells it.</summary>
    public string Architecture { get; init; } = "LlamaForCausalLM";

    public int HeadDim => HeadSize > 0 ? HeadSize : Dim / Heads;
    /// <summary>Whether a layer attends within the sliding window (all layers when one is set and no global pattern is).</summary>
    public bool IsSlidingLayer(int layer, int slidingWindow) => slidingWindow > 0 && (GlobalLayerEvery == 0 || (layer + 1) % GlobalLayerEvery != 0);
    public int KvDim => KvHeads * HeadDim;
    public int QDim => Heads * HeadDim;

    /// <summary>Throws when the shapes cannot describe a working decoder.</summary>
    public DecoderConfig Validate(string source)
    {
        void Require(bool ok, string what) { if (!ok) throw SioException.InFile(source, what); }
        Require(Dim > 0 && HiddenDim > 0 && Layers > 0 && Heads > 0 && KvHeads > 0 && VocabSize > 0 && ContextLength > 0,
            $"every dimension must be positive (dim {Dim}, hidden {HiddenDim}, layers {Layers}, heads {Heads}, kv heads {KvHeads}, vocab {VocabSize}, context {ContextLength})");
        Require(HeadSize > 0 || Dim % Heads == 0, $"dim {Dim} is not a multiple of heads {Heads}");
        Require(Experts >= 0 && (Experts == 0 || (ExpertsPerToken >= 1 && ExpertsPerToken <= Experts)),
            $"a mixture of {Experts} experts routes each token to 1 to {Experts} of them, not {ExpertsPerToken}");
        Require(Heads % KvHeads == 0, $"heads {Heads} is not a multiple of kv heads {KvHeads}");
        Require(HeadDim % 2 == 0, $"head size {HeadDim} must be even for rotary embeddings");
        Require(Layers <= 1024 && Dim <= 65536 && HiddenDim <= 262144 && VocabSize <= 1 << 22 && ContextLength <= 1 << 20,
            "dimensions are out of any plausible range");
        return this;
    }

    /// <summary>Parameters in the weights, counting a tied classifier once (and every expert of a mixture).</summary>
    public long ParameterCount =>
        (long)VocabSize * Dim * (TiedEmbeddings ? 1 : 2)
        + Layers * ((long)Dim * QDim * 2 + 2L * Dim * KvDim + 3L * Dim * HiddenDim * Math.Max(1, Experts) + (long)Dim * Experts + 2L * Dim)
        + Dim;
}
