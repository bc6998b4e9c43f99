namespace Sio.Models;

/// <summary>
/// Weights of a decoder, read one tensor at a time so that an importer never holds two copies of a
/// large model. Names are canonical and shapes are (out, in) as in llama2.c and Hugging Face:
/// <list type="bullet">
/// <item><c>embed</c> (vocab, dim); <c>norm</c> (dim); <c>lm_head</c> (vocab, dim), absent when tied</item>
/// <item><c>layers.{i}.attn_norm</c> (dim); <c>wq</c> (heads*head, dim); <c>wk</c>, <c>wv</c> (kv_heads*head, dim); <c>wo</c> (dim, heads*head)</item>
/// <item><c>layers.{i}.ffn_norm</c> (dim); <c>w1</c> gate (hidden, dim); <c>w2</c> down (dim, hidden); <c>w3</c> up (hidden, dim)</item>
/// <item>with <see cref="DecoderConfig.AttentionBias"/>: <c>layers.{i}.bq</c> (heads*head), <c>bk</c>, <c>bv</c> (kv_heads*head);
/// with <see cref="DecoderConfig.QkNorm"/>: <c>layers.{i}.q_norm</c>, <c>k_norm</c> (head);
/// with <see cref="DecoderConfig.SandwichNorms"/>: <c>layers.{i}.post_attn_norm</c>, <c>post_ffn_norm</c> (dim)</item>
/// <item>with <see cref="DecoderConfig.Experts"/>: <c>layers.{i}.router</c> (experts, dim) and <c>layers.{i}.experts.{e}.w1</c>, <c>w2</c>, <c>w3</c>
/// in place of w1, w2, w3</item>
/// <item>Norm weights are the factors applied (Gemma's stored w is read as 1 + w).</item>
/// </list>
/// Rotary layout follows <see cref="DecoderConfig.RotaryInterleaved"/>.
/// </summary>
public interface ICheckpoint : IDisposable
{
    DecoderConfig Config { get; }
    /// <summary>Where the weights came from, for error messages and the manifest.</summary>
    string Source { get; }
    float[] Read(string name);
}

public static class CheckpointNames
{
    public static string Layer(int i, string tensor) => $"layers.{i}.{tensor}";
    public static readonly string[] LayerTensors = ["attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1", "w2", "w3"];

    /// <summary>The tensors of one layer under a config: the Llama set, plus q/k/v biases and q/k norms when it has them.</summary>
    public static IEnumerable<string> LayerTensorsOf(DecoderConfig c) =>
        (c.Experts > 0 ? LayerTensors.Where(t => t is not ("w1" or "w2" or "w3")).Append("router").Concat(ExpertTensors(c)) : LayerTensors)
            .Concat(c.AttentionBias ? ["bq", "bk", "bv"] : []).Concat(c.QkNorm ? ["q_norm", "k_norm"] : [])
            .Concat(c.SandwichNorms ? ["post_attn_norm", "post_ffn_norm"] : []);

    /// <summary>A mixture-of-experts layer's expert tensors: experts.{e}.w1 (gate), w2 (down), w3 (up).</summary>
    static IEnumerable<string> ExpertTensors(DecoderConfig c) =>
        Enumerable.Range(0, c.Experts).SelectMany(e => new[] { $"experts.{e}.w1", $"experts.{e}.w2", $"experts.{e}.w3" });

    /// <summary>The shape of a canonical tensor under a config.</summary>
    public static long[] Shape(DecoderConfig c, string name)
    {
        var t = name.StartsWith("layers.") ? name[(name.IndexOf('.', 7) + 1)..] : name;
        if (t.StartsWith("experts.")) t = t[(t.LastIndexOf('.') + 1)..];
        return t switch
        {
            "embed" or "lm_head" => [c.VocabSize, c.Dim],
            "norm" or "attn_norm" or "ffn_norm" or "post_attn_norm" or "post_ffn_norm" => [c.Dim],
            "router" => [c.Experts, c.Dim],
            "bq" => [c.QDim],
            "bk" or "bv" => [c.KvDim],
            "q_norm" or "k_norm" => [c.HeadDim],
            "wq" => [c.QDim, c.Dim],
            "wk" or "wv" => [c.KvDim, c.Dim],
            "wo" => [c.Dim, c.QDim],
            "w1" or "w3" => [c.HiddenDim, c.Dim],
            "w2" => [c.Dim, c.HiddenDim],
            _ => throw new ArgumentException($"unknown tensor {name}"),
        };
    }

    public static long Elements(DecoderConfig c, string name) => Shape(c, name).Aggregate(1L, (a, b) => a * b);
}
