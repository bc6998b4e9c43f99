using System.Text.Json.Nodes;

namespace Sio.Models;

/// <summary>Writes genai_config.json so that ONNX Runtime GenAI can load a sio model folder as it is.</summary>
public static class GenAiConfig
{
    public const string FileName = "genai_config.json";

    public static void Write(string folder, DecoderConfig c, string modelFile = DecoderGraph.ModelFile)
    {
        var root = new JsonObject
        {
            ["model"] = new JsonObject
            {
                ["bos_token_id"] = c.BosTokenId,
                ["context_length"] = c.ContextLength,
                ["eos_token_id"] = c.EosTokenId,
                ["pad_token_id"] = c.EosTokenId,
                ["type"] = "llama",
                ["vocab_size"] = c.VocabSize,
                ["decoder"] = new JsonObject
                {
                    ["session_options"] = new JsonObject { ["log_id"] = "onnxruntime-genai", ["provider_options"] = new JsonArray() },
                    ["filename"] = modelFile,
                    ["head_size"] = c.HeadDim,
                    ["hidden_size"] = c.Dim,
                    ["num_attention_heads"] = c.Heads,
                    ["num_hidden_layers"] = c.Layers,
                    ["num_key_value_heads"] = c.KvHeads,
                    ["inputs"] = new JsonObject
                    {
                        ["input_ids"] = "input_ids",
                        ["attention_mask"] = "attention_mask",
                        ["position_ids"] = "position_ids",
                        ["past_key_names"] = "past_key_values.%d.key",
                        ["past_value_names"] = "past_key_values.%d.value",
                    },
                    ["outputs"] = new JsonObject
                    {
                        ["logits"] = "logits",
                        ["present_key_names"] = "present.%d.key",
                        ["present_value_names"] = "present.%d.value",
                    },
                },
            },
            ["search"] = new JsonObject
            {
                ["diversity_penalty"] = 0.0, ["do_sample"] = false, ["early_stopping"] = true, ["length_penalty"] = 1.0,
                ["max_length"] = c.ContextLength, ["min_length"] = 0, ["no_repeat_ngram_size"] = 0, ["num_beams"] = 1,
                ["num_return_sequences"] = 1, ["past_present_share_buffer"] = false, ["repetition_penalty"] = 1.0,
                ["temperature"] = 1.0, ["top_k"] = 1, ["top_p"] = 1.0,
            },
        };
        File.WriteAllText(Path.Combine(folder, FileName), root.ToJsonString(new() { WriteIndented = true }));
    }
}
