using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Sio.Benchmarking;
using Sio.Recommendation;

namespace Sio.Tests;

/// <summary>The recommendation job's own arithmetic: the SLO filter, the target's order, replicas, the Pareto front and the screen's pruning.</summary>
[Trait("Category", "fast")]
public class RankingTests
{
    static readonly QualityScore Exact = new(0, 0, 1, 3.4, 3.4, 100, 1_000_000);

    // concurrency, output tok/s, TTFT p99, TPOT p99, goodput (req/s), per-user tok/s
    static LoadLevel L(int c, double tps, double ttftP99, double tpotP99, double goodput, double perUser) =>
        new(c, 8, 0, tps, 10, ttftP99 / 2, ttftP99, tpotP99 / 2, tpotP99, 1, 2, 100, 200, goodput, goodput, 1, 8, perUser, null);

    static Finalist F(string quantization, string engine, params LoadLevel[] levels)
    {
        var c = new Candidate(quantization, "int8", 4, "none", "auto", engine);
        return new Finalist(c, Exact with { Bytes = quantization == "none" ? 1_000_000 : 500_000 }, new CandidateMeasurement(c, "key-" + quantization, levels, 1, false));
    }

    static readonly Instance Cheap = new("cheap", "cpu", 0.1, "USD", "test", "", null, 2), Dear = new("dear", "cpu", 0.4, "USD", "test", "", null, 2);

    [Fact]
    public void LevelsThatMissTheSloAreDroppedAndTheTargetOrdersTheRest()
    {
        var fast = F("rtn-int8", "onnx", L(1, 100, 20, 10, 2, 100), L(4, 300, 90, 14, 5, 75), L(8, 420, 400, 25, 7, 52));
        var slow = F("none", "onnx", L(1, 60, 15, 16, 1, 60), L(4, 200, 60, 20, 3, 50));
        var request = new RecommendationRequest { Model = "m", Dataset = "d", Slo = "ttft=100ms,tpot=20ms", Target = "throughput" };
        var (ranked, pareto, discarded) = Ranking.Rank(request, [fast, slow], [Cheap]);
        // c=8 of the fast one misses both objectives at p99, and says so
        Assert.Equal("TTFT p99 400 ms > 100 ms; TPOT p99 25 ms > 20 ms", Assert.Single(discarded).Reason);
        Assert.Equal(["rtn-int8/head-int8/a4@onnx/c4/cheap", "fp32@onnx/c4/cheap"], ranked.Select(e => e.Variant));
        Assert.Equal([1, 2], ranked.Select(e => e.Rank));
        Assert.Equal(10, ranked[0].Metric("output_throughput")!.Ci95);
        Assert.Equal("--engine onnx --max-concurrent 4", ranked[0].Serve);

        var ttft = Ranking.Rank(request with { Target = "ttft" }, [fast, slow], [Cheap]).Ranked;
        Assert.Equal(["fp32@onnx/c1/cheap", "rtn-int8/head-int8/a4@onnx/c1/cheap"], ttft.Select(e => e.Variant));

        // cost: the cheaper instance first; $ per 1M output tokens from the measured throughput
        var cost = Ranking.Rank(request with { Target = "cost" }, [fast], [Dear, Cheap]).Ranked;
        Assert.Equal(["cheap", "dear"], cost.Select(e => e.Instance));
        Assert.Equal(Math.Round(0.1 / (300 * 3600 / 1e6), 6), cost[0].Metric("price_per_1m_output_tokens")!.Value);

        // the Pareto front: no other point has both more tokens/s per user and per instance
        foreach (var p in pareto)
            Assert.Equal(!pareto.Any(o => o.PerUserTokensPerSecond >= p.PerUserTokensPerSecond && o.PerInstanceTokensPerSecond >= p.PerInstanceTokensPerSecond && o != p
                && (o.PerUserTokensPerSecond > p.PerUserTokensPerSecond || o.PerInstanceTokensPerSecond > p.PerInstanceTokensPerSecond)), p.OnFront);
        Assert.Contains(pareto, p => p.OnFront && p.Concurrency == 4 && p.Candidate.StartsWith("rtn"));
        Assert.Contains(pareto, p => !p.OnFront && p.Candidate == "fp32@onnx");
    }

    [Fact]
    public void ReplicasSustainTheRequestRate()
    {
        var f = F("none", "onnx", L(1, 100, 20, 10, 2.5, 100));
        var one = Ranking.Rank(new RecommendationRequest { Model = "m", Dataset = "d", Slo = "ttft=1s" }, [f], [Cheap]).Ranked.Single();
        Assert.Equal(1, one.Replicas);
        var many = Ranking.Rank(new RecommendationRequest { Model = "m", Dataset = "d", Slo = "ttft=1s", RequestRate = 6 }, [f], [Cheap]).Ranked.Single();
        Assert.Equal(3, many.Replicas); // ceil(6 / 2.5 requests/s meeting the SLO per replica)
        Assert.Equal(0.3, many.Metric("cost_per_hour")!.Value);
    }

    [Fact]
    public void TheScreenDropsCandidatesBeatenOnBothQualityAndSpeed()
    {
        CandidateMeasurement M(Candidate c, double tps) => new(c, "k", [L(1, tps, 10, 5, 1, tps)], 1, false);
        var a = new Candidate("none", "fp32", 0, "none", "auto", "onnx");
        var b = new Candidate("rtn-int8:g32", "int8", 4, "none", "auto", "onnx");
        var c = new Candidate("rtn-int4:g32", "int8", 4, "none", "auto", "onnx");
        var d = new Candidate("awq-int4:g32", "int8", 4, "none", "auto", "onnx");
        var quality = new Dictionary<string, QualityScore>
        {
            [a.ModelName] = Exact, [b.ModelName] = Exact with { MeanKld = 0.001 }, [c.ModelName] = Exact with { MeanKld = 0.08 }, [d.ModelName] = Exact with { MeanKld = 0.04 },
        };
        var discarded = new List<Discarded>();
        var kept = Screening.Prune([(a, M(a, 100)), (b, M(b, 150)), (c, M(c, 140)), (d, M(d, 200))], quality, "throughput", 2, discarded);
        Assert.Equal([d, b], kept.Select(k => k.C)); // the front (a, b, d), best two by tok/s
        Assert.Equal(2, discarded.Count);
        Assert.StartsWith($"beaten at concurrency 1 by {d.Name}", discarded.Single(x => x.Candidate == c.Name).Reason); // d: less KLD and faster
        Assert.StartsWith("not among the 2 best", discarded.Single(x => x.Candidate == a.Name).Reason);
        // an upper bound of the load stage: every request one after another, at the screen's end-to-end latency
        Assert.Equal(0.1 * 2 * 3 * 4, Screening.EstimateSeconds(L(1, 1, 1, 1, 1, 1), new Workload([1, 2, 4], 4, 2, new TokenLengths(64, 0), null, null)), 6);
    }

    [Fact]
    public void OnlyInstancesLikeThisWorkerAreMeasured()
    {
        var (measured, notMeasured) = MeasuredInstances.Split(Pricing.Catalogue(), "cpu", 2);
        Assert.Equal(["Standard_D2s_v5"], measured.Select(i => i.Name));
        Assert.Contains(notMeasured, n => n.StartsWith("Standard_NC4as_T4_v3: needs an NVIDIA T4"));
        Assert.Empty(MeasuredInstances.Split(Pricing.Catalogue(), "cpu", 16).Measured);
        Assert.Equal(5, MeasuredInstances.Split(Pricing.Catalogue(), "cuda", 16).Measured.Count);
    }

    [Theory]
    [InlineData("slo", "ttft=2s,e2e=1s", "is not below e2e")]
    [InlineData("slo", "ttft=1ms,tpot=10ms,e2e=100ms", "cannot meet e2e")]
    [InlineData("instances", "Standard_Z9", "not in the catalogue")]
    [InlineData("budget", "5 parsecs", "not a duration")]
    [InlineData("budget", "2s", "from 10s to 24h")]
    [InlineData("inputTokens", "lots", "MEAN±SPREAD")]
    [InlineData("outputTokens", "100±200", "spread")]
    [InlineData("quality", "kld=-1", "number ≥ 0")]
    [InlineData("quality", "bleu=0.3", "unknown limit 'bleu'")]
    [InlineData("target", "speed", "target must be ttft")]
    [InlineData("space.quantization", "gptq-int4", "is not a quantization")]
    [InlineData("space.", "", "the search space is empty")]
    [InlineData("space.quantization", "rtn-mixed", "give quality kld=")]
    public void BadRequestsNameTheirField(string field, string value, string why)
    {
        var r = new RecommendationRequest { Model = "m.bin", Dataset = "d.jsonl", OutputTokens = "64" };
        r = field switch
        {
            "slo" => r with { Slo = value },
            "instances" => r with { Instances = [value] },
            "budget" => r with { Budget = value },
            "inputTokens" => r with { InputTokens = value },
            "outputTokens" => r with { OutputTokens = value },
            "quality" => r with { Quality = value },
            "target" => r with { Target = value },
            "space.quantization" => r with { Space = r.Space with { Quantization = [value] }, Quality = "ppl=+10%" },
            _ => r with { Space = r.Space with { Engines = [] } },
        };
        var problems = r.Problems();
        var key = field == "space." ? "space." : field;
        Assert.True(problems.ContainsKey(key), string.Join("; ", problems.Keys));
        Assert.Contains(why, string.Join("; ", problems[key]));
        Assert.Single(problems);
    }

    [Fact]
    public void LengthsAndDurationsParse()
    {
        Assert.Equal(new TokenLengths(550, 150), TokenLengths.Parse("550±150", "x"));
        Assert.Equal(new TokenLengths(550, 150), TokenLengths.Parse("550+-150", "x"));
        Assert.Equal(TimeSpan.FromMinutes(90), RecommendationRequest.ParseDuration("1h30m"));
        Assert.Equal(new LatencySlo(500, 30), LatencySlo.Parse("ttft-p99=500ms,tpot-p99=30ms")); // the issue's spelling; p99 is what a recommendation holds
        var random = new Random(3);
        var draws = Enumerable.Range(0, 4000).Select(_ => new TokenLengths(100, 20).Draw(random, 1000)).ToList();
        Assert.InRange(draws.Average(), 98, 102);
        Assert.InRange(Math.Sqrt(draws.Average(x => (x - draws.Average()) * (x - draws.Average()))), 18, 22);
        var wide = new TokenLengths(100, 90);
        Assert.All(Enumerable.Range(0, 500).Select(_ => wide.Draw(random, 120)), x => Assert.InRange(x, 1, 120));
    }
}

/// <summary>`sio recommend` and POST /api/recommendations on the real sample model: real builds, real measurements, real ranking, real deployment.</summary>
[Trait("Category", "e2e")]
public class RecommendationTests
{
    [Fact]
    public void RecommendRanksDeployableConfigurationsAndAccountsForEveryCandidate()
    {
        var root = TestPaths.TempDir("recommend");
        var outDir = Path.Combine(root, "out");
        var (exit, output, err) = CliTests.Sio("recommend", TestPaths.Stories260K, "--dataset", TestPaths.TinyStoriesDev,
            "--quantization", "none,rtn-int8,rtn-int4:g128,rtn-mixed", "--drafters", "none,ngram", "--engines", "onnx,native", "--concurrency", "1,2",
            "--requests", "3", "--runs", "2", "--finalists", "2", "--output-tokens", "24±8", "--budget", "4m", "--json",
            "--store", Path.Combine(root, "store"), "--work-dir", Path.Combine(root, "work"), "--out", outDir);
        Assert.True(exit == 0, err + output);
        var r = JsonNode.Parse(output)!;
        var ranked = r["ranked"]!.AsArray();
        Assert.NotEmpty(ranked);
        Assert.Equal(Enumerable.Range(1, ranked.Count), ranked.Select(e => e!["rank"]!.GetValue<int>()));
        var tps = ranked.Select(e => Metric(e!, "output_throughput")!).ToList();
        Assert.Equal(tps.Select(m => m["value"]!.GetValue<double>()).OrderDescending(), tps.Select(m => m["value"]!.GetValue<double>())); // target: throughput
        Assert.All(tps, m => Assert.NotNull(m["ci95"])); // two runs: every throughput has its interval
        Assert.All(ranked, e => Assert.Contains($"--max-concurrent {e!["concurrency"]}", e["serve"]!.GetValue<string>()));
        Assert.All(ranked, e => Assert.Equal("Standard_D2s_v5", e!["instance"]!.GetValue<string>()));
        // every candidate of the space is either ranked or discarded with a reason
        var named = ranked.Select(e => e!["candidate"]!).Select(Name).Concat(r["discarded"]!.AsArray().Select(d => d!["candidate"]!.GetValue<string>())).ToList();
        foreach (var expected in new[] { "fp32@onnx", "fp32@native", "rtn-int8/head-int8/a4@onnx", "rtn-int8/head-int8/a4@native", "rtn-mixed/head-int8/a4@onnx", "fp32+ngram@onnx" })
            Assert.True(named.Any(n => n.StartsWith(expected)), $"{expected} is neither ranked nor discarded: {string.Join(", ", named)}");
        // a group wider than stories260K's 64-wide layers cannot be built: discarded at the build, the search went on
        Assert.Contains(r["discarded"]!.AsArray(), d => d!["candidate"]!.GetValue<string>().StartsWith("rtn-int4:g128") && d["stage"]!.GetValue<string>() == "build"
            && d["reason"]!.GetValue<string>().Contains("group size 128 is larger than K = 64"));
        Assert.Contains(r["pareto"]!.AsArray(), p => p!["onFront"]!.GetValue<bool>());
        Assert.NotEmpty(r["instancesNotMeasured"]!.AsArray());
        Assert.True(r["seconds"]!.GetValue<double>() < 240);
        Assert.True(File.Exists(Path.Combine(outDir, "recommendation.md")));
        Assert.Equal(r.ToJsonString(), JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "recommendation.json")))!.ToJsonString());
    }

    static JsonNode? Metric(JsonNode entry, string name) => entry["expected"]!.AsArray().FirstOrDefault(m => m!["metric"]!.GetValue<string>() == name);

    static string Name(JsonNode candidate)
    {
        var c = System.Text.Json.JsonSerializer.Deserialize<Candidate>(candidate, Sio.Pipeline.OptimizationRequest.Json)!;
        return c.Name;
    }

    [Fact]
    public async Task TheApiRunsARecommendationAndDeploysAnyEntry()
    {
        await using var up = new UpServer();
        var request = new JsonObject
        {
            ["model"] = TestPaths.Stories260K, ["dataset"] = TestPaths.TinyStoriesDev, ["target"] = "ttft", ["slo"] = "ttft=30s", ["budget"] = "3m",
            ["outputTokens"] = "16", ["requests"] = 2, ["runs"] = 2,
            ["space"] = new JsonObject
            {
                ["quantization"] = new JsonArray("none", "rtn-int8"), ["drafters"] = new JsonArray("none"), ["engines"] = new JsonArray("onnx"), ["concurrency"] = new JsonArray(1, 2),
            },
        };
        var started = await up.Http.PostAsJsonAsync("api/recommendations", request);
        Assert.Equal(HttpStatusCode.Accepted, started.StatusCode);
        var id = JsonNode.Parse(await started.Content.ReadAsStringAsync())!["id"]!.GetValue<string>();
        Assert.EndsWith($"/api/recommendations/{id}", started.Headers.Location!.ToString());
        JsonNode status;
        var deadline = DateTime.UtcNow.AddMinutes(4);
        while (true)
        {
            var answer = await up.Http.GetAsync($"api/recommendations/{id}");
            status = JsonNode.Parse(await answer.Content.ReadAsStringAsync())!;
            if (answer.StatusCode == HttpStatusCode.OK) break;
            Assert.Equal(HttpStatusCode.Accepted, answer.StatusCode);
            Assert.True(DateTime.UtcNow < deadline, status.ToJsonString());
            await Task.Delay(300);
        }
        Assert.Equal("Completed", status["runtimeStatus"]!.GetValue<string>());
        var ranked = status["recommendation"]!["ranked"]!.AsArray();
        Assert.NotEmpty(ranked);
        var ttft = ranked.Select(e => Metric(e!, "ttft")!["value"]!.GetValue<double>()).ToList();
        Assert.Equal(ttft.Order(), ttft); // target: the lowest p99 time to first token first
        Assert.Contains(status["events"]!.AsArray(), e => e!["message"]!.GetValue<string>().StartsWith("measured "));

        // any entry deploys (here the last), with its serving settings
        var second = ranked[^1]!;
        var deployed = await up.Http.PostAsJsonAsync("api/deployments", new { runId = id, variant = second["variant"]!.GetValue<string>() });
        var body = await deployed.Content.ReadAsStringAsync();
        Assert.True(deployed.StatusCode == HttpStatusCode.OK, body);
        var manifest = JsonNode.Parse(body)!;
        Assert.Equal(second["concurrency"]!.GetValue<int>(), manifest["serving"]!["maxConcurrent"]!.GetValue<int>());
        Assert.Equal("onnx", manifest["serving"]!["engine"]!.GetValue<string>());
        var models = JsonNode.Parse(await up.Http.GetStringAsync("v1/models"))!["data"]!.AsArray();
        Assert.Contains(models, m => m!["id"]!.GetValue<string>().StartsWith(Sio.Pipeline.DeploymentManifest.SafeName(second["variant"]!.GetValue<string>())));
        var list = JsonNode.Parse(await up.Http.GetStringAsync("api/recommendations"))!["recommendations"]!.AsArray();
        Assert.Equal(id, Assert.Single(list)!["id"]!.GetValue<string>());

        // the same request again finds the search already there
        var again = JsonNode.Parse(await (await up.Http.PostAsJsonAsync("api/recommendations", request)).Content.ReadAsStringAsync())!;
        Assert.True(again["duplicate"]!.GetValue<bool>());
    }

    [Fact]
    public void CtrlCStopsARecommendationAtOnceAndTheSameCommandContinues()
    {
        var root = TestPaths.TempDir("recommend-interrupt");
        string[] args = ["recommend", TestPaths.Stories260K, "--dataset", TestPaths.TinyStoriesDev, "--quantization", "none,rtn-int8,awq-int4:g32", "--drafters", "none",
            "--engines", "onnx", "--concurrency", "1,2", "--requests", "3", "--budget", "3m", "--store", Path.Combine(root, "store"), "--work-dir", Path.Combine(root, "work")];
        using (var sio = new SioProcess(args))
        {
            var deadline = DateTime.UtcNow.AddMinutes(2);
            while (!sio.Output.Contains("search (") && DateTime.UtcNow < deadline) Thread.Sleep(50);
            Assert.Contains("search (", sio.Output);
            sio.Interrupt();
            Assert.True(sio.WaitForExit(TimeSpan.FromSeconds(20)), "sio recommend went on after Ctrl+C: " + sio.Output);
            Assert.Equal(1, sio.ExitCode);
            Assert.Contains("interrupted; run the same command again to continue from what is stored", sio.Output);
        }
        var (exit, output, err) = CliTests.Sio([.. args, "--json"]);
        Assert.True(exit == 0, err + output);
        Assert.NotEmpty(JsonNode.Parse(output)!["ranked"]!.AsArray());
    }

    [Fact]
    public async Task BadRecommendationsAreRefusedBeforeAnyWork()
    {
        await using var up = new UpServer();
        var bad = await up.Http.PostAsJsonAsync("api/recommendations", new { model = TestPaths.Stories260K, dataset = TestPaths.TinyStoriesDev, slo = "ttft=2s,e2e=1s", instances = new[] { "Standard_NC4as_T4_v3" } });
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        var errors = JsonNode.Parse(await bad.Content.ReadAsStringAsync())!["errors"]!.AsObject();
        Assert.Equal(["instances", "slo"], errors.Select(e => e.Key).Order());
        Assert.Contains("no instance considered can be measured on this worker", errors["instances"]![0]!.GetValue<string>());
        Assert.Empty(JsonNode.Parse(await up.Http.GetStringAsync("api/recommendations"))!["recommendations"]!.AsArray());

        var root = TestPaths.TempDir("recommend-bad");
        var outDir = Path.Combine(root, "out");
        var (exit, _, err) = CliTests.Sio("recommend", TestPaths.Stories260K, "--dataset", TestPaths.TinyStoriesDev, "--quantization", "none,gptq-int4", "--out", outDir,
            "--store", Path.Combine(root, "store"));
        Assert.Equal(1, exit);
        Assert.Contains("--quantization: 'gptq-int4' is not a quantization", err);
        Assert.False(Directory.Exists(outDir));

        // a dataset too small to split fails in the validate step, naming it, before anything is built
        var one = Path.Combine(root, "one.jsonl");
        File.WriteAllText(one, "{\"text\": \"Once upon a time\"}\n");
        (exit, _, err) = CliTests.Sio("recommend", TestPaths.Stories260K, "--dataset", one, "--out", outDir, "--store", Path.Combine(root, "store"), "--work-dir", Path.Combine(root, "work"));
        Assert.Equal(1, exit);
        Assert.Contains("validate failed: dataset:", err);
        Assert.Contains("at least 2 are needed", err);
        Assert.False(Directory.Exists(outDir));
        Assert.False(Directory.Exists(Path.Combine(root, "store", "artifacts", "models")));
    }
}
