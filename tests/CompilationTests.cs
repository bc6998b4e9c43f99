using System.Text.Json.Nodes;
using Sio.Artifacts;
using Sio.Compilation;
using Sio.Generation;

namespace Sio.Tests;

[Collection("stories260K")]
[Trait("Category", "e2e")]
public class CompilationTests(Stories260KFixture stories) : IDisposable
{
    readonly string _dir = TestPaths.TempDir("compile");
    public void Dispose() => Directory.Delete(_dir, true);
    string Cache => Path.Combine(_dir, "cache");

    static void SameModel(string a, string b)
    {
        using var ma = Model.Load(a);
        using var mb = Model.Load(b);
        Assert.Null(mb.Warning);
        LogitAsserts.SameLogits(ma, mb, "Once upon a time, there was a little girl named Lily. She loved to play.");
        var opts = new GenerationOptions { MaxTokens = 60 };
        Assert.Equal(TextGeneration.Generate(ma, [1], opts).TokenIds, TextGeneration.Generate(mb, [1], opts).TokenIds);
    }

    [Fact]
    public void CompiledModelGivesTheSameTokensAndLogits()
    {
        var outDir = Path.Combine(_dir, "compiled");
        var r = Compiler.Run(stories.ModelDir, outDir, new CompileConfig { CacheDir = Cache });
        using (var m = Model.Load(outDir))
        {
            Assert.StartsWith("model.opt.", m.GraphFile);
            Assert.Equal("cpu", m.Manifest.Compiled!.Target);
        }
        SameModel(stories.ModelDir, outDir);

        // a shape on GroupQueryAttention's fused rotary path too
        var syn = Path.Combine(_dir, "syn");
        Assert.Equal(0, CliTests.Sio("import", "--synthetic", "--dim", "64", "--hidden", "128", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--vocab", "300", "--context", "128", "--out", syn).Exit);
        Compiler.Run(syn, syn + "-cpu", new CompileConfig { CacheDir = Cache });
        SameModel(syn, syn + "-cpu");
    }

    [Fact]
    public void SecondCompileIsACacheHitAndOtherInputsMiss()
    {
        var first = CliTests.Sio("compile", stories.ModelDir, "--out", Path.Combine(_dir, "a"), "--cache", Cache, "--json");
        Assert.True(first.Exit == 0, first.Err);
        var a = JsonNode.Parse(first.Out)!;
        Assert.False(a["cache_hit"]!.GetValue<bool>());
        var b = JsonNode.Parse(CliTests.Sio("compile", stories.ModelDir, "--out", Path.Combine(_dir, "b"), "--cache", Cache, "--json").Out)!;
        Assert.True(b["cache_hit"]!.GetValue<bool>());
        Assert.Equal(a["artifact"]!.GetValue<string>(), b["artifact"]!.GetValue<string>());
        Assert.Equal(a["key"]!.GetValue<string>(), b["key"]!.GetValue<string>());
        SameModel(stories.ModelDir, Path.Combine(_dir, "b"));

        // another model is another key
        var rtn = Path.Combine(_dir, "rtn");
        Quantization.Quantizer.Run(stories.ModelDir, rtn, new Quantization.QuantizationConfig { Method = "rtn" });
        var c = JsonNode.Parse(CliTests.Sio("compile", rtn, "--cache", Cache, "--json").Out)!;
        Assert.False(c["cache_hit"]!.GetValue<bool>());
        Assert.NotEqual(a["key"]!.GetValue<string>(), c["key"]!.GetValue<string>());
        Assert.True(Directory.Exists(rtn + "-cpu"));
    }

    [Fact]
    public void ACorruptCacheEntryIsDiscardedAndRebuiltNeverLoaded()
    {
        var r = Compiler.Run(stories.ModelDir, Path.Combine(_dir, "a"), new CompileConfig { CacheDir = Cache });
        var victim = Directory.GetFiles(r.Artifact).First(f => Path.GetFileName(f).StartsWith("model.opt"));
        var bytes = File.ReadAllBytes(victim);
        bytes[bytes.Length / 2] ^= 0xFF;
        File.Delete(victim); // a new file: the output folder above keeps its own link to the old one
        File.WriteAllBytes(victim, bytes);

        var (lookup, _, _, problem) = new ArtifactStore(Cache).Find(Compiler.Kind, r.Key);
        Assert.Equal(ArtifactStore.Lookup.Corrupt, lookup);
        Assert.Contains("sha256", problem);
        Assert.False(Directory.Exists(r.Artifact));

        var again = Compiler.Run(stories.ModelDir, Path.Combine(_dir, "b"), new CompileConfig { CacheDir = Cache });
        Assert.False(again.CacheHit);
        SameModel(stories.ModelDir, Path.Combine(_dir, "b"));

        // corrupt again and compile: the command says it discarded the entry
        var victim2 = Directory.GetFiles(again.Artifact).First(f => Path.GetFileName(f).StartsWith("model.opt"));
        File.Delete(victim2);
        var (exit, output, err) = CliTests.Sio("compile", stories.ModelDir, "--out", Path.Combine(_dir, "c"), "--cache", Cache, "--json");
        Assert.Equal(0, exit);
        Assert.Contains("is missing", JsonNode.Parse(output)!["discarded_corrupt_entry"]!.GetValue<string>());
        Assert.False(JsonNode.Parse(output)!["cache_hit"]!.GetValue<bool>());
        SameModel(stories.ModelDir, Path.Combine(_dir, "c"));
    }

    [Fact]
    public void AGraphCompiledForOtherHardwareFallsBackToTheOriginalWithAWarning()
    {
        var outDir = Path.Combine(_dir, "elsewhere");
        Compiler.Run(stories.ModelDir, outDir, new CompileConfig { CacheDir = Cache });
        var manifest = Path.Combine(outDir, Models.ModelManifest.FileName);
        var j = JsonNode.Parse(File.ReadAllText(manifest))!;
        j["compiled"]!["hardware"] = "0000000000000000";
        j["compiled"]!["hardware_description"] = "another machine";
        File.WriteAllText(manifest, j.ToJsonString());
        using var m = Model.Load(outDir);
        Assert.Equal("model.onnx", m.GraphFile);
        Assert.Contains("another machine", m.Warning);
        var (exit, _, err) = CliTests.Sio("generate", outDir, "--max-tokens", "3");
        Assert.Equal(0, exit);
        Assert.Contains("warning:", err);
    }

    [Theory]
    [InlineData("cuda", "CUDAExecutionProvider")]
    [InlineData("tensorrt", "TensorrtExecutionProvider")]
    [InlineData("npu", "--target must be cpu, cuda or tensorrt")]
    public void TargetsThisMachineCannotServeAreRefused(string target, string message)
    {
        var (exit, _, err) = CliTests.Sio("compile", stories.ModelDir, "--target", target, "--cache", Cache, "--out", Path.Combine(_dir, "gpu"));
        Assert.Equal(1, exit);
        Assert.Contains(message, err);
        Assert.False(Directory.Exists(Path.Combine(_dir, "gpu")));
    }

    [Fact]
    public void TensorRtKeepsItsCompiledCachesInTheArtifact()
    {
        var folder = Path.Combine(_dir, "artifact");
        var trt = Compiler.TensorRtOptions(folder);
        Assert.Equal("1", trt["trt_engine_cache_enable"]);
        Assert.Equal(folder, trt["trt_engine_cache_path"]);
        Assert.Equal("1", trt["trt_timing_cache_enable"]);
        Assert.Equal(folder, trt["trt_timing_cache_path"]);
        Assert.Equal("1", trt["trt_dump_ep_context_model"]);
        var write = Compiler.EpContextConfig(folder, write: true);
        Assert.Equal("1", write["ep.context_enable"]);
        Assert.Equal(Path.Combine(folder, Compiler.EpContextFile), write["ep.context_file_path"]);
        Assert.Empty(Compiler.EpContextConfig(folder, write: false));
        // different targets never share a cache entry
        var files = Directory.GetFiles(stories.ModelDir, "model.onnx*");
        Assert.Equal(3, Compiler.Targets.Select(t => Compiler.Key(files, t)).Distinct().Count());
        // and loading for a provider this build lacks is refused, naming it
        var e = Assert.Throws<SioException>(() => Model.Load(stories.ModelDir, new ModelOptions { Provider = "tensorrt" }));
        Assert.Contains("TensorrtExecutionProvider", e.Message);
    }

    [Fact]
    public void CompilingACompiledFolderIsRefused()
    {
        var outDir = Path.Combine(_dir, "once");
        Compiler.Run(stories.ModelDir, outDir, new CompileConfig { CacheDir = Cache });
        var e = Assert.Throws<SioException>(() => Compiler.Run(outDir, null, new CompileConfig { CacheDir = Cache }));
        Assert.Contains("already compiled", e.Message);
    }
}
