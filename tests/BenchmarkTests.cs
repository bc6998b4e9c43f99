using System.Text.Json.Nodes;
using Sio.Benchmarking;
using Sio.Speculative;

namespace Sio.Tests;

[Collection("stories260K")]
[Trait("Category", "e2e")]
public class BenchmarkTests(Stories260KFixture stories) : IDisposable
{
    readonly string _dir = TestPaths.TempDir("bench");
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void PercentilesInterpolateBetweenClosestRanks()
    {
        var p = Percentiles.Of(Enumerable.Range(1, 10).Select(i => (double)i).Reverse());
        Assert.Equal(5.5, p.P50, 9);
        Assert.Equal(9.1, p.P90, 9);
        Assert.Equal(9.91, p.P99, 9);
        Assert.Equal(new Percentiles(7, 7, 7), Percentiles.Of([7.0]));
        Assert.Equal(Percentiles.Empty, Percentiles.Of([]));
    }

    [Fact]
    public void BlendedPriceWorkedExample()
    {
        // p50 ITL 20 ms at concurrency 8: (1 / 0.020 s) × 8 = 400 tokens/s
        double total = Pricing.TotalTokensPerSecond(20, 8);
        Assert.Equal(400, total, 9);
        // $3.673/hour with 20 % off: 0.8 × 3.673 / (400 × 3600 / 10^6) / 4 = 2.9384 / 1.44 / 4 = 0.510138… $ per 1M tokens
        Assert.Equal(0.8 * 3.673 / 1.44 / 4, Pricing.BlendedPricePerMillionTokens(3.673, 0.2, total), 12);
        Assert.Equal(0.51013888888, Pricing.BlendedPricePerMillionTokens(3.673, 0.2, total), 9);
        Assert.True(double.IsPositiveInfinity(Pricing.BlendedPricePerMillionTokens(1, 0, 0)));
    }

    [Fact]
    public void LevelSummaryFromSyntheticTimings()
    {
        var instance = new Instance("x", "test", 2.0, "USD", "test", "now", null);
        var none = new SpeculativeStats();
        var timings = new List<RequestTiming>
        {
            new(100, [10, 20, 30], 160, 50, 4, none),
            new(200, [10, 10, 10], 230, 60, 4, none),
        };
        var l = LoadBenchmark.Summarize(2, timings, ["boom"], 0.5, instance, 0);
        Assert.Equal(2, l.Requests);
        Assert.Equal(1, l.Errors);
        Assert.Equal(10, l.ItlMs.P50, 9);                 // ITLs 10,10,10,10,20,30
        Assert.Equal(150, l.TtftMs.P50, 9);
        Assert.Equal(16, l.OutputTokensPerSecond, 9);     // 8 tokens in 0.5 s
        Assert.Equal(4, l.RequestsPerSecond, 9);
        Assert.Equal(200, l.TotalTokensPerSecond, 9);     // 1 / 10 ms × 2
        Assert.Equal(2.0 / (200 * 3600 / 1e6) / 4, l.BlendedPricePerMillionTokens, 12);
        Assert.Equal((3 / 0.06 + 3 / 0.03) / 2, l.OutputTokensPerSecondPerRequest, 9);
        Assert.Null(l.AcceptanceRate);
    }

    [Fact]
    public void RougeLIsTheLcsF1OverWords()
    {
        Assert.Equal(1.0, QualityComparison.RougeL("The cat sat.", "the cat sat"), 9);
        Assert.Equal(0.0, QualityComparison.RougeL("dog", "the cat sat"), 9);
        // LCS "the cat" = 2: precision 2/3, recall 2/4 → F1 = 4/7
        Assert.Equal(4.0 / 7, QualityComparison.RougeL("the big cat", "the cat sat down"), 9);
    }

    [Fact]
    public void ATinySweepWritesAConsistentReport()
    {
        var quant = Path.Combine(_dir, "rtn");
        Quantization.Quantizer.Run(stories.ModelDir, quant, new Quantization.QuantizationConfig { Method = "rtn" });
        var dataset = Path.Combine(_dir, "data.jsonl");
        File.WriteAllLines(dataset, File.ReadLines(TestPaths.OpenOrcaDev).Take(30).Append("{broken json").Append("{\"unrelated\": 1}"));
        var outDir = Path.Combine(_dir, "report");
        var (exit, output, err) = CliTests.Sio("benchmark", quant, "--dataset", dataset, "--concurrency", "1,2", "--requests", "4", "--max-new-tokens", "12",
            "--prompt-tokens-min", "8", "--prompt-tokens-max", "480", "--baseline", stories.ModelDir, "--speculative", "ngram",
            "--instance", "Standard_NC24ads_A100_v4", "--discount", "0.25", "--out", outDir, "--json");
        Assert.True(exit == 0, err);
        foreach (var f in new[] { "report.json", "report.md", Charts.Throughput, Charts.Itl, Charts.Price })
            Assert.True(File.Exists(Path.Combine(outDir, f)), $"{f} missing");
        foreach (var png in new[] { Charts.Throughput, Charts.Itl, Charts.Price })
            Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(Path.Combine(outDir, png))[..4]);

        var r = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "report.json")))!;
        Assert.Equal(JsonNode.Parse(output)!.ToJsonString(), r.ToJsonString());
        Assert.Equal(2, r["dataset"]!["rows_skipped"]!.GetValue<int>());
        var levels = r["levels"]!.AsArray();
        Assert.Equal([1, 2], levels.Select(l => l!["concurrency"]!.GetValue<int>()));
        var instance = r["instance"]!;
        Assert.Equal(3.673, instance["price_per_hour"]!.GetValue<double>());
        Assert.Equal(0.25, instance["discount"]!.GetValue<double>());
        foreach (var l in levels)
        {
            Assert.Equal(4, l!["requests"]!.GetValue<int>());
            Assert.Equal(0, l["errors"]!.GetValue<int>());
            var itl = l["itl_ms"]!;
            Assert.True(itl["p50"]!.GetValue<double>() <= itl["p90"]!.GetValue<double>() && itl["p90"]!.GetValue<double>() <= itl["p99"]!.GetValue<double>());
            double total = Pricing.TotalTokensPerSecond(itl["p50"]!.GetValue<double>(), l["concurrency"]!.GetValue<int>());
            Assert.Equal(total, l["total_tokens_per_second"]!.GetValue<double>(), 6);
            Assert.Equal(Pricing.BlendedPricePerMillionTokens(3.673, 0.25, total), l["blended_price_per_million_tokens"]!.GetValue<double>(), 9);
            Assert.True(l["output_tokens_per_second"]!.GetValue<double>() > 0);
            Assert.NotNull(l["ttft_ms"]!["p99"]);
            Assert.NotNull(l["e2e_ms"]!["p50"]);
        }
        Assert.Equal(2, r["baseline"]!["levels"]!.AsArray().Count);
        var q = r["quality"]!;
        Assert.InRange(q["token_agreement"]!.GetValue<double>(), 0, 1);
        Assert.True(q["perplexity"]!.GetValue<double>() > 1 && q["baseline_perplexity"]!.GetValue<double>() > 1);
        Assert.True(q["mean_kld"]!.GetValue<double>() > 0, "int4 weights left the distributions unchanged");
        Assert.InRange(q["same_top_token"]!.GetValue<double>(), 0.3, 1);
        Assert.NotNull(q["rouge_l"]);
        var presets = r["presets"]!;
        foreach (var name in new[] { "lowest_latency", "lowest_cost", "balanced" })
        {
            var p = presets[name]!;
            Assert.Contains(p["concurrency"]!.GetValue<int>(), new[] { 1, 2 });
            Assert.Contains(p["variant"]!.GetValue<string>(), new[] { "baseline", "rtn+ngram" });
        }
        Assert.True(presets["lowest_cost"]!["price_per_million_tokens"]!.GetValue<double>() <= presets["balanced"]!["price_per_million_tokens"]!.GetValue<double>());
        Assert.True(presets["lowest_latency"]!["itl_p50_ms"]!.GetValue<double>() <= presets["balanced"]!["itl_p50_ms"]!.GetValue<double>());
        var md = File.ReadAllText(Path.Combine(outDir, "report.md"));
        Assert.Contains("## baseline", md);
        Assert.Contains("## rtn+ngram", md);
        Assert.Contains("lowest cost", md);
    }

    [Fact]
    public void EmptyOrUnusableDatasetsAreClearErrors()
    {
        var empty = Path.Combine(_dir, "empty.jsonl");
        File.WriteAllText(empty, "");
        var bad = Path.Combine(_dir, "bad.jsonl");
        File.WriteAllText(bad, "{\"a\": 1}\nnot json\n");
        var shortRows = Path.Combine(_dir, "short.jsonl");
        File.WriteAllText(shortRows, "{\"prompt\": \"Hi\"}\n");
        foreach (var (file, message) in new[] { (empty, "the dataset is empty"), (bad, "no usable row"), (shortRows, "no row has a prompt of 500–1000 tokens") })
        {
            var outDir = Path.Combine(_dir, "out");
            var (exit, _, err) = CliTests.Sio("benchmark", stories.ModelDir, "--dataset", file, "--max-new-tokens", "8", "--out", outDir);
            Assert.Equal(1, exit);
            Assert.Contains(message, err);
            Assert.False(Directory.Exists(outDir));
        }
        var (e3, _, err3) = CliTests.Sio("benchmark", stories.ModelDir, "--dataset", TestPaths.OpenOrcaDev, "--latency-bound-ms", "0", "--out", Path.Combine(_dir, "o"));
        Assert.Equal(1, e3);
        Assert.Contains("--latency-bound-ms must be > 0", err3);
        var (e2, _, err2) = CliTests.Sio("benchmark", stories.ModelDir, "--dataset", TestPaths.OpenOrcaDev, "--instance", "NoSuchVM", "--out", Path.Combine(_dir, "o"));
        Assert.Equal(1, e2);
        Assert.Contains("not in the catalogue", err2);
    }

    [Fact]
    public void EveryCataloguePriceNamesItsSourceAndDate()
    {
        var catalogue = Pricing.Catalogue();
        Assert.Contains(catalogue, i => i.Name.StartsWith("ACA-serverless"));
        Assert.Contains(catalogue, i => i.Kind.Contains("CPU"));
        Assert.All(catalogue, i => { Assert.True(i.PricePerHour > 0); Assert.StartsWith("https://", i.Source); Assert.NotEmpty(i.AsOf); });
    }
}
