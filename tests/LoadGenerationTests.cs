using System.Text.Json.Nodes;
using Sio.Benchmarking;
using Sio.Serving;
using Sio.Speculative;

namespace Sio.Tests;

/// <summary>
/// Load generation as serving benchmarks measure: open-loop arrivals (Poisson, or bursty by a gamma shape), goodput
/// against latency objectives, p99s, and repeated runs with confidence intervals; in-process through sio's batching
/// engine and over HTTP against a real `sio serve` on 127.0.0.1.
/// </summary>
[Collection("stories260K")]
public class LoadGenerationTests(Stories260KFixture stories)
{
    [Theory]
    [InlineData(1.0, 1.0)]   // Poisson: exponential gaps, coefficient of variation 1
    [InlineData(0.25, 2.0)]  // bursty: CV = 1 / sqrt(shape)
    [InlineData(4.0, 0.5)]   // steadier
    public void ArrivalsHaveTheRateAndTheBurstinessAsked(double burstiness, double cv)
    {
        var t = Arrivals.Schedule(rate: 4, burstiness, count: 20_000, seed: 7);
        var gaps = t.Select((x, i) => i == 0 ? x : x - t[i - 1]).ToArray();
        Assert.All(gaps, g => Assert.True(g >= 0));
        double mean = gaps.Average(), sd = Math.Sqrt(gaps.Sum(g => (g - mean) * (g - mean)) / (gaps.Length - 1));
        Assert.InRange(mean, 0.25 * 0.96, 0.25 * 1.04);
        Assert.InRange(sd / mean, cv * 0.93, cv * 1.07);
        Assert.Equal(t, Arrivals.Schedule(4, burstiness, 20_000, 7)); // seeded: a rerun sends the same schedule
        Assert.NotEqual(t, Arrivals.Schedule(4, burstiness, 20_000, 8));
    }

    [Fact]
    public void ObjectivesAreParsedInTheirUnitsAndBadOnesAreNamed()
    {
        Assert.Equal(new LatencySlo(500, 30, 2000), LatencySlo.Parse("ttft=500ms,tpot=30,e2e=2s"));
        foreach (var (bad, says) in new[] { ("ttft=0ms", "positive time"), ("itl=5ms", "unknown objective 'itl'"), ("ttft", "NAME=TIME"), (",", "names no objective"), ("tpot=fast", "positive time") })
            Assert.Contains(says, Assert.Throws<SioException>(() => LatencySlo.Parse(bad)).Message);
        Assert.Contains("--request-rate", Assert.Throws<SioException>(() => Arrivals.Schedule(0, 1, 3, 1)).Message);
        Assert.Contains("--burstiness", Assert.Throws<SioException>(() => new LoadBenchmarkConfig { RequestRates = [1], Burstiness = 0 }.Validate()).Message);
        Assert.Contains("--duration applies to closed-loop", Assert.Throws<SioException>(() => new LoadBenchmarkConfig { RequestRates = [1], DurationSeconds = 5 }.Validate()).Message);
    }

    [Fact]
    public void GoodputCountsTheRequestsThatMetEveryObjectiveAndRunsGiveIntervals()
    {
        var instance = new Instance("x", "test", 2.0, "USD", "test", "now", null);
        var none = new SpeculativeStats();
        RequestTiming T(double ttft, double e2e, int tokens) => new(ttft, [], e2e, 10, tokens, none);
        var slo = new LatencySlo(TtftMs: 100, TpotMs: 20);
        var runs = new List<(List<RequestTiming>, List<string>, double)>
        {
            ([T(50, 150, 11), T(150, 200, 11)], [], 1.0),   // TPOT 10 ms and 5 ms; the second misses TTFT: 1 good, 22 tokens in 1 s
            ([T(50, 450, 11), T(90, 170, 5)], [], 2.0),     // TPOT 40 ms (misses) and 20 ms: 1 good, 16 tokens in 2 s
            ([T(10, 60, 6), T(20, 70, 6)], [], 1.0),        // both good: 2 good, 12 tokens in 1 s
        };
        var l = LoadBenchmark.Summarize(8, runs, instance, 0, slo, rate: 2);
        Assert.Equal(4, l.GoodRequests);
        Assert.Equal(2, l.RequestRate);
        Assert.Equal(3, l.Runs);
        double[] goodput = [1, 0.5, 2], tps = [22, 8, 12];
        Assert.Equal(goodput.Average(), l.Goodput, 9);
        Assert.Equal(tps.Average(), l.OutputTokensPerSecond, 9);
        double Sd(double[] x) => Math.Sqrt(x.Sum(v => (v - x.Average()) * (v - x.Average())) / (x.Length - 1));
        Assert.Equal(4.303 * Sd(tps) / Math.Sqrt(3), l.OutputTokensPerSecondCi95!.Value, 9);
        Assert.Equal(4.303 * Sd(goodput) / Math.Sqrt(3), l.GoodputCi95!.Value, 9);
        Assert.Equal(2.0 / (tps.Average() * 3600 / 1e6) / 4, l.PricePerMillionTokens, 12); // from the measured throughput
        Assert.Equal(10, l.TpotMs!.P50, 9); // TPOTs 10, 5, 40, 20, 10, 10
    }

    [Fact]
    public void AnOpenLoopSweepRunsInProcessOnTheBatchingEngine()
    {
        var dir = TestPaths.TempDir("open-loop");
        var (exit, output, err) = CliTests.Sio("benchmark", stories.ModelDir, "--dataset", TestPaths.TinyStoriesDev, "--request-rate", "40,400", "--requests", "10",
            "--runs", "2", "--slo", "ttft=30s,tpot=5s", "--max-batch", "4", "--max-new-tokens", "8", "--prompt-tokens-min", "4", "--prompt-tokens-max", "200",
            "--baseline", stories.ModelDir, "--out", Path.Combine(dir, "report"), "--json");
        Assert.True(exit == 0, err);
        var r = JsonNode.Parse(output)!;
        Assert.Equal("open-loop", r["config"]!["load"]!.GetValue<string>());
        // a plain-text dataset: the distributions are compared on its texts; the model against itself diverges by nothing
        Assert.Equal(0, r["quality"]!["mean_kld"]!.GetValue<double>());
        Assert.Equal(1, r["quality"]!["same_top_token"]!.GetValue<double>());
        var levels = r["levels"]!.AsArray();
        Assert.Equal([40.0, 400.0], levels.Select(l => l!["request_rate"]!.GetValue<double>()));
        foreach (var l in levels)
        {
            Assert.Equal(20, l!["requests"]!.GetValue<int>()); // 10 arrivals × 2 runs
            Assert.Equal(0, l["errors"]!.GetValue<int>());
            Assert.Equal(20, l["good_requests"]!.GetValue<int>()); // objectives nothing here can miss
            Assert.True(l["goodput"]!.GetValue<double>() > 0 && l["goodput_ci95"] is not null && l["output_tokens_per_second_ci95"] is not null);
            Assert.True(l["tpot_ms"]!["p99"]!.GetValue<double>() >= l["tpot_ms"]!["p50"]!.GetValue<double>());
            // each request's queue time is part of its TTFT, so every percentile of the one is at most the other's
            Assert.InRange(l["queue_ms"]!["p99"]!.GetValue<double>(), 0, l["ttft_ms"]!["p99"]!.GetValue<double>());
            Assert.InRange(l["queue_ms"]!["p50"]!.GetValue<double>(), 0, l["ttft_ms"]!["p50"]!.GetValue<double>());
            Assert.True(l["price_per_million_tokens"]!.GetValue<double>() > 0);
        }
        foreach (var chart in Charts.All) Assert.True(File.Exists(Path.Combine(dir, "report", chart)), chart);
        Assert.Contains("open loop", File.ReadAllText(Path.Combine(dir, "report", "report.md")));
        Directory.Delete(dir, true);
    }

    [Fact]
    public async Task AnOpenLoopSweepMeasuresARealServerOverHttp()
    {
        await using var s = new ServerFixture(stories.ModelDir, new ServeOptions { MaxConcurrent = 2 });
        var dir = TestPaths.TempDir("open-loop-http");
        var (exit, output, err) = CliTests.Sio("benchmark", stories.ModelDir, "--dataset", TestPaths.TinyStoriesDev, "--endpoint", s.BaseUri.ToString(),
            "--request-rate", "25", "--burstiness", "0.5", "--requests", "8", "--max-new-tokens", "6", "--prompt-tokens-min", "4", "--prompt-tokens-max", "200",
            "--slo", "ttft=1ms", "--out", Path.Combine(dir, "report"), "--json");
        Assert.True(exit == 0, err);
        var l = JsonNode.Parse(output)!["levels"]![0]!;
        Assert.Equal("http", JsonNode.Parse(output)!["config"]!["mode"]!.GetValue<string>());
        Assert.Equal(8, l["requests"]!.GetValue<int>());
        Assert.Equal(0, l["good_requests"]!.GetValue<int>()); // no answer over HTTP starts within 1 ms
        Assert.Equal(0, l["goodput"]!.GetValue<double>());
        Assert.Null(l["queue_ms"]); // over HTTP the queue is the server's: it exports it as sio_request_queue_time_seconds
        Assert.True(l["output_tokens_per_second"]!.GetValue<double>() > 0);
        Directory.Delete(dir, true);
    }
}
