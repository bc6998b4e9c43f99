using System.Text.Json.Nodes;

namespace Sio.Models;

/// <summary>
/// Writes a checkpoint as a Hugging Face Llama folder (config.json + model.safetensors, float32).
/// Interleaved rotary weights are permuted into Hugging Face's half-split layout.
/// </summary>
public static class HuggingFaceExporter
{
    public static void Export(ICheckpoint checkpoint, string folder)
    {
        var c = checkpoint.Config;
        Directory.CreateDirectory(folder);
        var tensors = new List<(string, long[], float[])>();
        foreach (var name in HuggingFaceCheckpoint.CanonicalNames(c))
        {
            var data = checkpoint.Read(name);
            var kind = name.Split('.')[^1];
            if (c.RotaryInterleaved && kind is "wq" or "wk")
                data = InterleavedToHalfSplit(data, kind == "wq" ? c.Heads : c.KvHeads, c.HeadDim, c.Dim);
            tensors.Add((HuggingFaceCheckpoint.HfName(name), CheckpointNames.Shape(c, name), data));
        }
        SafetensorsFile.Write(Path.Combine(folder, "model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray(c.Architecture),
            ["model_type"] = c.Architecture == "MistralForCausalLM" ? "mistral" : "llama",
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
            ["tie_word_embeddings"] = c.TiedEmbeddings,
            ["bos_token_id"] = c.BosTokenId,
            ["eos_token_id"] = c.EosTokenId,
            ["hidden_act"] = "silu",
            ["torch_dtype"] = "float32",
        };
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString(new() { WriteIndented = true }));
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
