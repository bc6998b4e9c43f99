using System.Text;
using Sio.Models;

namespace Sio.Tests;

/// <summary>Each bad input gives one clear error naming the file and the problem, exit 1, and no output folder.</summary>
[Trait("Category", "e2e")]
public class BadInputTests : IDisposable
{
    readonly string _dir = TestPaths.TempDir("bad");
    public void Dispose() => Directory.Delete(_dir, true);

    string Out => Path.Combine(_dir, "out");

    void AssertRefused(string[] args, string file, string problem)
    {
        var (exit, stdout, err) = CliTests.Sio(args);
        Assert.Equal(1, exit);
        Assert.StartsWith("error: ", err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.Contains(file, err);
        Assert.Contains(problem, err);
        Assert.False(Directory.Exists(Out), "an output folder was left behind");
        Assert.DoesNotContain(Directory.GetDirectories(_dir), d => Path.GetFileName(d).StartsWith(".out"));
    }

    string WithTokenizer(string name, byte[] content)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, content);
        File.Copy(TestPaths.Tok512, Path.Combine(_dir, "tokenizer.bin"), true);
        return path;
    }

    [Fact]
    public void TruncatedCheckpoint()
    {
        var path = WithTokenizer("cut.bin", File.ReadAllBytes(TestPaths.Stories260K)[..100_000]);
        AssertRefused(["import", path, "--out", Out], path, "truncated llama2.c checkpoint");
    }

    [Fact]
    public void ForeignBinFile()
    {
        var path = WithTokenizer("foreign.bin", Encoding.UTF8.GetBytes("PK\u0003\u0004 this is a zip archive, not a checkpoint at all........"));
        AssertRefused(["import", path, "--out", Out], path, "not a llama2.c checkpoint");
        AssertRefused(["import", TestPaths.Tok512, "--out", Out], TestPaths.Tok512, "not a llama2.c checkpoint");
    }

    [Fact]
    public void CheckpointWithoutTokenizer()
    {
        var lonely = Path.Combine(_dir, "lonely");
        Directory.CreateDirectory(lonely);
        var path = Path.Combine(lonely, "model.bin");
        File.Copy(TestPaths.Stories260K, path);
        AssertRefused(["import", path, "--out", Out], path, "missing tokenizer");
        AssertRefused(["import", path, "--tokenizer", Path.Combine(lonely, "nope.bin"), "--out", Out], "nope.bin", "not found");
    }

    string HfFolder()
    {
        var hf = Path.Combine(_dir, "hf");
        using var ckpt = new Llama2cCheckpoint(TestPaths.Stories260K);
        HuggingFaceExporter.Export(ckpt, hf, tokenizer: Tokenization.SentencePieceBpeTokenizer.FromLlama2c(TestPaths.Tok512, 512));
        return hf;
    }

    [Fact]
    public void SafetensorsWithBrokenHeader()
    {
        var hf = HfFolder();
        var st = Path.Combine(hf, "model.safetensors");
        var bytes = File.ReadAllBytes(st);
        bytes[20] = (byte)'}'; // break the JSON
        File.WriteAllBytes(st, bytes);
        AssertRefused(["import", hf, "--out", Out], st, "broken safetensors header");
        BitConverter.GetBytes(1L << 40).CopyTo(bytes, 0); // a header length past the end
        File.WriteAllBytes(st, bytes);
        AssertRefused(["import", hf, "--out", Out], st, "broken safetensors header");
    }

    [Fact]
    public void UnsupportedArchitecture()
    {
        var hf = HfFolder();
        var config = Path.Combine(hf, "config.json");
        var original = File.ReadAllText(config);
        File.WriteAllText(config, original.Replace("LlamaForCausalLM", "Qwen2MoeForCausalLM"));
        AssertRefused(["import", hf, "--out", Out], config, "unsupported architecture Qwen2MoeForCausalLM");
        File.WriteAllText(config, original.Replace("LlamaForCausalLM", "Gemma3ForConditionalGeneration"));
        AssertRefused(["import", hf, "--out", Out], config, "Gemma3ForConditionalGeneration is a multimodal checkpoint");
        // a Qwen2 config over Llama weights: the biases Qwen2 needs are missing
        File.WriteAllText(config, original.Replace("LlamaForCausalLM", "Qwen2ForCausalLM"));
        AssertRefused(["import", hf, "--out", Out], hf, "tensor model.layers.0.self_attn.q_proj.bias is missing");
    }

    [Theory]
    [InlineData("{\"rope_type\": \"yarn\", \"factor\": 4}", "unsupported rope_scaling type \"yarn\"")]
    [InlineData("{\"rope_type\": \"longrope\", \"short_factor\": [1], \"long_factor\": [1]}", "unsupported rope_scaling type \"longrope\" for LlamaForCausalLM")]
    [InlineData("{\"rope_type\": \"llama3\", \"factor\": \"32\"}", "\"rope_scaling.factor\" must be a positive number")]
    [InlineData("{\"rope_type\": \"llama3\", \"factor\": 32, \"low_freq_factor\": 4, \"high_freq_factor\": 1}", "high_freq_factor 1 must exceed low_freq_factor 4")]
    [InlineData("[1, 2]", "\"rope_scaling\" must be an object")]
    public void UnsupportedOrMalformedRopeScaling(string scaling, string problem)
    {
        var hf = HfFolder();
        var config = Path.Combine(hf, "config.json");
        var j = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(config))!;
        j["rope_scaling"] = System.Text.Json.Nodes.JsonNode.Parse(scaling);
        File.WriteAllText(config, j.ToJsonString());
        AssertRefused(["import", hf, "--out", Out], config, problem);
    }

    /// <summary>Phi-3's longrope, malformed: the config is read before any tensor, so a Phi-3 config over Llama weights shows it.</summary>
    [Theory]
    [InlineData("{\"type\": \"longrope\", \"short_factor\": [1, 1], \"long_factor\": [1, 1]}", 128, "\"rope_scaling.short_factor\" must be a list of")]
    [InlineData("{\"type\": \"su\", \"short_factor\": \"1\", \"long_factor\": [1]}", 128, "\"rope_scaling.short_factor\" must be a list of")]
    [InlineData("{\"type\": \"longrope\", \"short_factor\": [1], \"long_factor\": [1]}", null, "\"rope_scaling.original_max_position_embeddings\" is missing")]
    [InlineData("{\"type\": \"longrope\", \"short_factor\": [1], \"long_factor\": [1]}", 1 << 20, "original_max_position_embeddings 1048576 exceeds max_position_embeddings")]
    public void MalformedLongRope(string scaling, int? original, string problem)
    {
        var hf = HfFolder();
        var config = Path.Combine(hf, "config.json");
        var j = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(config).Replace("LlamaForCausalLM", "Phi3ForCausalLM"))!;
        j["rope_scaling"] = System.Text.Json.Nodes.JsonNode.Parse(scaling);
        if (original is { } o) j["original_max_position_embeddings"] = o;
        File.WriteAllText(config, j.ToJsonString());
        AssertRefused(["import", hf, "--out", Out], config, problem);
    }

    [Fact]
    public void HuggingFaceFolderWithoutTokenizer()
    {
        var hf = HfFolder();
        File.Delete(Path.Combine(hf, "tokenizer.json"));
        AssertRefused(["import", hf, "--out", Out], hf, "missing tokenizer");
    }

    [Fact]
    public void MissingTensorAndWrongShape()
    {
        var hf = HfFolder();
        var config = Path.Combine(hf, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"intermediate_size\": 172", "\"intermediate_size\": 170"));
        AssertRefused(["import", hf, "--out", Out], "model.safetensors", "config.json implies");
    }

    [Fact]
    public void GenerateOnAFolderThatIsNotAModel()
    {
        var (exit, _, err) = CliTests.Sio("generate", _dir);
        Assert.Equal(1, exit);
        Assert.Contains("not a sio model folder", err);
    }

    [Fact]
    public void DatasetsWithNothingUsable()
    {
        var empty = Path.Combine(_dir, "empty.jsonl");
        File.WriteAllText(empty, "");
        var e = Assert.Throws<SioException>(() => Evaluation.DatasetReader.Read(empty));
        Assert.Contains("empty", e.Message);
        var bad = Path.Combine(_dir, "bad.jsonl");
        File.WriteAllText(bad, "{\"foo\": 1}\n{not json\n{\"text\": 5}\n");
        e = Assert.Throws<SioException>(() => Evaluation.DatasetReader.Read(bad));
        Assert.Contains("no usable row (3 rows skipped", e.Message);
        var mixed = Path.Combine(_dir, "mixed.jsonl");
        File.WriteAllText(mixed, "{\"text\": \"Once upon a time\"}\n{broken\n");
        var d = Evaluation.DatasetReader.Read(mixed);
        Assert.Equal((1, 1), (d.Records.Count, d.Skipped));
    }
}
