using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Sio.Generation;
using Sio.Models;
using Sio.Serving;

namespace Sio.Tests;

/// <summary>
/// A served model of each family stops at its end-of-turn token. The checkpoint (Llama-shaped, the family's real
/// vocabulary size) is built so that greedy decoding emits one chosen token: every layer writes nothing, every
/// embedding is the same, and only that token's classifier row is non-zero. config.json's eos_token_id is never that
/// token: Llama 3's is named only by generation_config.json's eos_token_id list, Qwen3's only by tokenizer_config.json's
/// eos_token, so stopping at it shows that import reads them. A check of the stopping rule, not of any model's quality.
/// </summary>
[Trait("Category", "e2e")]
public class EndOfTurnTests
{
    sealed class EmitsOneToken(DecoderConfig config, int token) : ICheckpoint
    {
        public DecoderConfig Config => config;
        public string Source => $"emits-token-{token}";
        public float[] Read(string name)
        {
            var values = new float[CheckpointNames.Elements(config, name)];
            switch (name.Split('.')[^1])
            {
                case "norm" or "attn_norm" or "ffn_norm": Array.Fill(values, 1f); break;
                case "embed": Array.Fill(values, 0.5f); break;
                case "lm_head": Array.Fill(values, 1f, token * config.Dim, config.Dim); break;
            }
            return values;
        }
        public void Dispose() { }
    }

    /// <summary>family, model vocabulary, config.json's eos, generation_config.json's eos list, the end-of-turn token to emit.</summary>
    public static TheoryData<string, int, int, int[], string> Families => new()
    {
        { "llama3", 128256, 128001, [128001, 128009], "<|eot_id|>" },      // named only by generation_config.json
        { "llama3_1", 128256, 128001, [128001, 128009], "<|eot_id|>" },
        { "qwen3", 151936, 151643, [151643], "<|im_end|>" },        // named only by tokenizer_config.json's eos_token
        { "gemma3", 262208, 1, [1, 106], "<end_of_turn>" },
    };

    [Theory, MemberData(nameof(Families))]
    public async Task AServedModelStopsAtItsEndOfTurnToken(string family, int vocab, int eos, int[] generationEos, string endOfTurn)
    {
        var dir = TestPaths.TempDir("eot");
        try
        {
            var files = NpmReference.ModelFiles(family);
            var probe = Tokenization.HuggingFaceTokenizer.Load(Path.Combine(files, "tokenizer.json"), vocab, -1, eos);
            int token = probe.Pieces.ToList().IndexOf(endOfTurn);
            var config = new DecoderConfig { Dim = 64, HiddenDim = 128, Layers = 1, Heads = 4, KvHeads = 2, VocabSize = vocab, ContextLength = 256, BosTokenId = eos, EosTokenId = eos };
            var hf = Path.Combine(dir, "hf");
            HuggingFaceExporter.Export(new EmitsOneToken(config, token), hf);
            foreach (var f in new[] { "tokenizer.json", "tokenizer_config.json" }) File.Copy(Path.Combine(files, f), Path.Combine(hf, f));
            File.WriteAllText(Path.Combine(hf, "generation_config.json"), new JsonObject { ["eos_token_id"] = new JsonArray(generationEos.Select(i => (JsonNode)i).ToArray()) }.ToJsonString());
            var modelDir = Path.Combine(dir, "model");
            var manifest = ModelImporter.Import(new ImportRequest { Source = hf }, modelDir);
            Assert.Contains(token, manifest.StopTokens);
            Assert.True(File.Exists(Path.Combine(modelDir, "generation_config.json")));

            await using var s = new ServerFixture(modelDir);
            var messages = new object[] { new { role = "user", content = "Hello there." } };
            var stopped = await Chat(s, new { messages, max_tokens = 8, temperature = 0 });
            Assert.Equal("stop", stopped["choices"]![0]!["finish_reason"]!.GetValue<string>());
            Assert.Equal(0, stopped["usage"]!["completion_tokens"]!.GetValue<int>());
            Assert.Equal("", stopped["choices"]![0]!["message"]!["content"]!.GetValue<string>());
            using (var model = Model.Load(modelDir))
            {
                var template = ChatTemplate.ForModel(modelDir);
                var prompt = template.Tokenize(model.Tokenizer, template.Render([("user", "Hello there.")]));
                Assert.Equal(prompt.Count, stopped["usage"]!["prompt_tokens"]!.GetValue<int>());
            }
            // a conversation the template refuses (Gemma's raise_exception) is a 400 naming the template's reason
            var refused = await s.Http.PostAsJsonAsync("/v1/chat/completions", new { messages = new object[] { new { role = "assistant", content = "Hi" } }, max_tokens = 2 });
            if (family == "gemma3")
            {
                Assert.Equal(System.Net.HttpStatusCode.BadRequest, refused.StatusCode);
                Assert.Contains("Conversation roles must alternate", await refused.Content.ReadAsStringAsync());
            }
            var ignored = await Chat(s, new { messages, max_tokens = 8, temperature = 0, ignore_eos = true });
            Assert.Equal("length", ignored["choices"]![0]!["finish_reason"]!.GetValue<string>());
            Assert.Equal(8, ignored["usage"]!["completion_tokens"]!.GetValue<int>());
        }
        finally { Directory.Delete(dir, true); }
    }

    static async Task<JsonNode> Chat(ServerFixture s, object body)
    {
        var r = await s.Http.PostAsJsonAsync("/v1/chat/completions", body);
        var text = await r.Content.ReadAsStringAsync();
        Assert.True(r.IsSuccessStatusCode, text);
        return JsonNode.Parse(text)!;
    }
}
