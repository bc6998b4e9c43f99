using System.Text.Json.Nodes;
using Sio.Cli;

namespace Sio.Tests;

/// <summary>The command-line contract, run in-process with captured output.</summary>
[Collection("stories260K")]
[Trait("Category", "e2e")]
public class CliTests(Stories260KFixture stories)
{
    internal static (int Exit, string Out, string Err) Sio(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int exit = Cli.Cli.Run(SioCommand.Create(), args, o, e);
        return (exit, o.ToString(), e.ToString());
    }

    [Fact]
    public void GenerateJsonHasTheContractFields()
    {
        var (exit, output, err) = Sio("generate", stories.ModelDir, "--max-tokens", "20", "--json");
        Assert.True(exit == 0, err);
        var j = JsonNode.Parse(output)!;
        Assert.Equal([1], j["prompt_token_ids"]!.AsArray().Select(n => n!.GetValue<int>()));
        Assert.Equal(20, j["token_ids"]!.AsArray().Count);
        Assert.StartsWith("Once upon a time, there was a little girl named Lily.", j["text"]!.GetValue<string>());
    }

    [Fact]
    public void GenerateWithPromptAndSamplingIsReproducible()
    {
        string[] args = ["generate", stories.ModelDir, "--prompt", "Once upon a time", "--max-tokens", "30", "--temperature", "0.8", "--top-k", "40", "--top-p", "0.9", "--seed", "7", "--json"];
        var a = JsonNode.Parse(Sio(args).Out)!;
        var b = JsonNode.Parse(Sio(args).Out)!;
        Assert.Equal([1, 403, 407, 261, 378], a["prompt_token_ids"]!.AsArray().Select(n => n!.GetValue<int>()));
        Assert.Equal(a["token_ids"]!.ToJsonString(), b["token_ids"]!.ToJsonString());
        var other = JsonNode.Parse(Sio([.. args[..^2], "12345", "--json"]).Out)!;
        Assert.NotEqual(a["token_ids"]!.ToJsonString(), other["token_ids"]!.ToJsonString());
    }

    [Fact]
    public void EvalJsonScoresTextAndPromptResponseRows()
    {
        var (exit, output, err) = Sio("eval", stories.ModelDir, "--dataset", TestPaths.TinyStoriesDev, "--max-records", "5", "--max-tokens-per-record", "64", "--json");
        Assert.True(exit == 0, err);
        var j = JsonNode.Parse(output)!;
        Assert.Equal(5, j["records"]!.GetValue<int>());
        Assert.Equal(5 * 63, j["tokens_scored"]!.GetValue<long>());
        Assert.Equal(Math.Exp(j["mean_nll"]!.GetValue<double>()), j["perplexity"]!.GetValue<double>(), 6);

        var orca = JsonNode.Parse(Sio("eval", stories.ModelDir, "--dataset", TestPaths.OpenOrcaDev, "--max-records", "3", "--json").Out)!;
        // records whose prompt fills the whole context have no response token left to score: skipped, counted
        Assert.Equal(3, orca["records"]!.GetValue<int>() + orca["skipped"]!.GetValue<int>());
        Assert.True(orca["records"]!.GetValue<int>() >= 1);
        Assert.True(orca["tokens_scored"]!.GetValue<long>() > 0);
    }

    [Fact]
    public void ImportReplacesAnEarlierModelFolderButNotOtherFolders()
    {
        var dir = TestPaths.TempDir("reimport");
        try
        {
            var outDir = Path.Combine(dir, "m");
            Assert.Equal(0, Sio("import", TestPaths.Stories260K, "--out", outDir).Exit);
            Assert.Equal(0, Sio("import", TestPaths.Stories260K, "--out", outDir).Exit);
            Assert.Single(Directory.GetDirectories(dir));

            var precious = Path.Combine(dir, "precious");
            Directory.CreateDirectory(precious);
            File.WriteAllText(Path.Combine(precious, "notes.txt"), "keep me");
            var (exit, _, err) = Sio("import", TestPaths.Stories260K, "--out", precious);
            Assert.Equal(1, exit);
            Assert.Contains("not a sio model folder", err);
            Assert.Equal("keep me", File.ReadAllText(Path.Combine(precious, "notes.txt")));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void ColdStartBenchStartsTheGivenBuildWithAndWithoutTheVariable()
    {
        var sioDll = Path.Combine(AppContext.BaseDirectory, "sio.dll");
        var (exit, output, err) = Sio("bench", "coldstart", stories.ModelDir, "--runs", "1", "--sio", sioDll, "--with-env", "GLIBC_TUNABLES=glibc.malloc.hugetlb=1", "--json");
        Assert.True(exit == 0, err);
        var rows = JsonNode.Parse(output)!["models"]!.AsArray();
        Assert.Equal(2, rows.Count);
        Assert.All(rows, r =>
        {
            Assert.Equal(sioDll, r!["sio"]!.GetValue<string>());
            Assert.Equal("model.onnx", r["graph"]!.GetValue<string>());
            // the answer comes after the model loaded and the first token was made
            Assert.True(r["cold_start_ms"]!.GetValue<double>() > r["load_ms"]!.GetValue<double>() + r["first_token_ms"]!.GetValue<double>());
        });
        Assert.Null(rows[0]!["env"]);
        Assert.Equal("GLIBC_TUNABLES=glibc.malloc.hugetlb=1", rows[1]!["env"]!.GetValue<string>());

        Refused("sio build not found", "bench", "coldstart", stories.ModelDir, "--sio", "/nonexistent/sio");
        Refused("--with-env must be NAME=VALUE", "bench", "coldstart", stories.ModelDir, "--with-env", "NOEQUALS");
    }

    [Fact]
    public void UsageErrorsSpeakTheDomainAndJsonErrorsAreJson()
    {
        var (exit, output, err) = Sio("generate", stories.ModelDir, "--max-tokens", "many", "--temperature", "hot");
        Assert.Equal(1, exit);
        Assert.Equal("", output);
        Assert.Contains("error: ", err);
        Assert.Contains("'many' for option '--max-tokens' as a whole number", err);
        Assert.Contains("'hot' for option '--temperature' as a number", err);
        Assert.DoesNotContain("System.", err);
        Assert.Contains("see: sio generate --help", err);
        Assert.DoesNotContain("Usage:", err); // a hint, not the whole help

        var usage = Sio("generate", stories.ModelDir, "--max-tokens", "many", "--json");
        Assert.Equal(1, usage.Exit);
        var e = JsonNode.Parse(usage.Out)!["error"]!;
        Assert.Equal("usage_error", e["type"]!.GetValue<string>());
        Assert.Contains("--max-tokens", e["message"]!.GetValue<string>());
        Assert.Equal("see: sio generate --help", e["hint"]!.GetValue<string>());

        var missing = Path.Combine(stories.Root, "no-such-model");
        var input = Sio("generate", missing, "--json");
        Assert.Equal(1, input.Exit);
        var ie = JsonNode.Parse(input.Out)!["error"]!;
        Assert.Contains(missing, ie["message"]!.GetValue<string>());
        Assert.Contains($"error: {ie["message"]!.GetValue<string>()}", input.Err);
    }

    /// <summary>The command exits 1 and its error names the problem.</summary>
    void Refused(string error, params string[] args)
    {
        var (exit, _, err) = Sio(args);
        Assert.Equal(1, exit);
        Assert.Contains(error, err);
    }

    [Fact]
    public void SpinningOptionsRefuseUnknownValues()
    {
        Refused("--spinning must be on or off", "serve", stories.ModelDir, "--spinning", "sometimes");
        Refused("--spinning must be on, off or both", "bench", "decode", stories.ModelDir, "--spinning", "sometimes");
        Refused("--engine must be onnx, native or both", "bench", "decode", stories.ModelDir, "--engine", "gpu");
    }

    [Fact]
    public void QuantizeRefusesBitsItCannotWrite()
    {
        var outDir = Path.Combine(stories.Root, "bits-refused");
        Refused("--bits must be 4 or 8, got 3", "quantize", stories.ModelDir, "--method", "rtn", "--bits", "3", "--out", outDir);
        Refused("--lm-head int4 with --bits 8", "quantize", stories.ModelDir, "--method", "rtn", "--bits", "8", "--lm-head", "int4", "--out", outDir);
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void SyntheticImportBuildsAWorkingModel()
    {
        var dir = TestPaths.TempDir("synthetic");
        try
        {
            var outDir = Path.Combine(dir, "syn");
            var (exit, _, err) = Sio("import", "--synthetic", "--dim", "64", "--hidden", "128", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--vocab", "600", "--context", "128", "--out", outDir);
            Assert.True(exit == 0, err);
            var g = JsonNode.Parse(Sio("generate", outDir, "--max-tokens", "10", "--json").Out)!;
            Assert.Equal(10, g["token_ids"]!.AsArray().Count);
            var bench = Sio("bench", "decode", outDir, "--prompt-tokens", "8", "--tokens", "8", "--runs", "1", "--json");
            Assert.True(bench.Exit == 0, bench.Err);
            var b = JsonNode.Parse(bench.Out)!;
            var m = b["models"]![0]!;
            Assert.True(m["decode_tokens_per_second"]!.GetValue<double>() > 0);
            Assert.Equal(1.0, m["decode_speedup"]!.GetValue<double>());
            // q, o (64x64), k, v (32x64), gate, up, down (64x128) per layer, the classifier (64x600), norms, three int64 constants
            Assert.Equal(4L * (2 * (2 * 64 * 64 + 2 * 32 * 64 + 3 * 64 * 128 + 2 * 64) + 64 + 64 * 600) + 3 * 8, m["weight_bytes_per_token"]!.GetValue<long>());
        }
        finally { Directory.Delete(dir, true); }
    }
}

/// <summary>Progress as a person sees it in a terminal (a pseudo-terminal from util-linux's `script`), and as a CI log shows it.</summary>
[Trait("Category", "e2e")]
public class ProgressTests
{
    [Fact]
    public void LongCommandsShowProgressWithAnEtaInATerminalAndPlainLinesInLogs()
    {
        var dir = TestPaths.TempDir("progress");
        var model = Path.Combine(dir, "m");
        Assert.Equal(0, CliTests.Sio("import", "--synthetic", "--dim", "512", "--hidden", "1536", "--layers", "8", "--heads", "8", "--vocab", "512",
            "--context", "512", "--tokenizer", TestPaths.Tok512, "--out", model).Exit);

        // in a terminal: one line redrawn in place, with a bar, the percentage, elapsed time and an ETA
        var sio = $"dotnet {Path.Combine(AppContext.BaseDirectory, "sio.dll")} quantize {model} --method rtn --out {Path.Combine(dir, "q-tty")}";
        var script = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("script", ["-qec", sio, "/dev/null"]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var tty = script.StandardOutput.ReadToEnd();
        script.WaitForExit();
        Assert.Equal(0, script.ExitCode);
        Assert.Matches(@"\rquantize: \[#+-*\] +\d+ % [\d.]+s, ETA [\d.]+s  quantizing \d+/56", tty);
        Assert.Contains("\u001b[K", tty); // each redraw clears the rest of the line
        Assert.Contains("rtn int4 g32: 56 linears", tty);

        // in a log: no carriage returns, a line per phase and per 10 %, and the total time
        var (exit, _, log) = CliTests.Sio("quantize", model, "--method", "rtn", "--out", Path.Combine(dir, "q-log"));
        Assert.Equal(0, exit);
        Assert.DoesNotContain("\r", log);
        var lines = log.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.InRange(lines.Count(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^quantize: quantizing \d+ % \(\d+/56\), [\d.]+s(, ETA [\d.]+s)?$")), 10, 11); // 0 % to 100 %
        Assert.Contains(lines, l => l.StartsWith("quantize: quantizing 100 % (56/56)")); // up to the last linear
        Assert.Matches(@"^quantize: done in [\d.]+s$", lines[^1]);
        Directory.Delete(dir, true);
    }
}
