using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Sio.Serving;

namespace Sio.Tests;

/// <summary>
/// What an operator watches: the Prometheus scrape parsed as Prometheus reads it (vLLM's metric names with sio's prefix,
/// seconds, model_name labels, finish reasons, HTTP status counts), the spans a real `sio serve` and `sio optimize`
/// export over OTLP to a local collector endpoint, and stop sequences that end the work at once.
/// </summary>
[Collection("stories260K")]
[Trait("Category", "e2e")]
public class TelemetryTests(Stories260KFixture stories)
{
    /// <summary>A copy of stories260K under a name no other test serves, so that its model_name label isolates this test's counts.</summary>
    string UniqueModel(string name)
    {
        var dir = Path.Combine(stories.Root, name);
        if (!Directory.Exists(dir))
        {
            Directory.CreateDirectory(dir);
            foreach (var f in Directory.GetFiles(stories.ModelDir)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        }
        return dir;
    }

    [Fact]
    public async Task AStopSequenceEndsTheWorkAndIsCountedAsStop()
    {
        await using var s = new ServerFixture(UniqueModel("stop-model"), new ServeOptions { MaxConcurrent = 1 });
        // the tokens of the greedy answer, from its logprobs
        var full = await Complete(s, new { prompt = "Once upon a time", max_tokens = 40, temperature = 0, logprobs = 1 });
        var tokens = full["choices"]![0]!["logprobs"]!["tokens"]!.AsArray().Select(t => t!.GetValue<string>()).ToList();
        var text = full["choices"]![0]!["text"]!.GetValue<string>();
        Assert.Equal(40, tokens.Count);
        // a stop sequence that the answer reaches in its middle
        var stop = text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(6).First(w => w.Length >= 3);
        int cut = text.IndexOf(stop, StringComparison.Ordinal);
        int needed = Enumerable.Range(1, tokens.Count).First(k => string.Concat(tokens.Take(k)).Contains(stop, StringComparison.Ordinal));
        Assert.True(needed < 40, $"'{stop}' is reached only at the end");

        var before = Scrape.Parse(await s.Http.GetStringAsync("/metrics"));
        var stopped = await Complete(s, new { prompt = "Once upon a time", max_tokens = 40, temperature = 0, stop = new[] { stop } });
        Assert.Equal("stop", stopped["choices"]![0]!["finish_reason"]!.GetValue<string>());
        Assert.Equal(text[..cut], stopped["choices"]![0]!["text"]!.GetValue<string>());
        // the engine stopped at the token that completed the stop sequence: no token was generated after it
        Assert.Equal(needed, stopped["usage"]!["completion_tokens"]!.GetValue<int>());
        var after = Scrape.Parse(await s.Http.GetStringAsync("/metrics"));
        var model = new Dictionary<string, string> { ["model_name"] = "stop-model" };
        Assert.Equal(needed, after.Value("sio_generation_tokens_total", model) - before.Value("sio_generation_tokens_total", model));
        Assert.Equal(1, after.Value("sio_requests_total", new(model) { ["finished_reason"] = "stop" }) - before.Value("sio_requests_total", new(model) { ["finished_reason"] = "stop" }));
        Assert.Equal(0, after.Value("sio_requests_total", new(model) { ["finished_reason"] = "abort" }));
    }

    [Fact] // a redeploy or roll back of the same model id: its series must survive the old engine's release
    public async Task AHotSwapToTheSameModelKeepsItsMetrics()
    {
        var dir = UniqueModel("swap-model");
        await using var s = new ServerFixture(dir, new ServeOptions { MaxConcurrent = 1 }, allowLocalPaths: true);
        var model = new Dictionary<string, string> { ["model_name"] = "swap-model" };
        for (int round = 1; round <= 3; round++)
        {
            if (round > 1) Assert.Equal(HttpStatusCode.OK, (await s.Http.PostAsJsonAsync("/api/deployments", new { model = dir })).StatusCode);
            await Complete(s, new { prompt = "Once upon a time", max_tokens = 6, temperature = 0 });
            var m = await WaitFor(s, m => m.Value("sio_requests_total", model) >= round);
            Assert.Equal(round, m.Value("sio_requests_total", model)); // totals carry over the swaps, as one model's counter
            Assert.Equal(6 * round, m.Value("sio_generation_tokens_total", model));
            Assert.Single(m.Samples, x => x.Name == "sio_num_requests_running" && x.Labels.GetValueOrDefault("model_name") == "swap-model");
        }
    }

    [Fact]
    public async Task MetricsAreVllmsInSecondsWithModelNameFinishReasonsAndStatusCodes()
    {
        // a model slow enough (16M parameters, random: speed only) that a long answer holds the one slot while the test acts
        var dir = Path.Combine(stories.Root, "metrics-model");
        if (!Directory.Exists(dir))
        {
            var imported = CliTests.Sio("import", "--synthetic", "--dim", "512", "--hidden", "1536", "--layers", "6", "--heads", "8", "--vocab", "512",
                "--context", "1024", "--tokenizer", TestPaths.Tok512, "--out", dir);
            Assert.True(imported.Exit == 0, imported.Err);
        }
        await using var s = new ServerFixture(dir, new ServeOptions { MaxConcurrent = 1, QueueCapacity = 0 });
        var model = new Dictionary<string, string> { ["model_name"] = "metrics-model" };
        int prompt = 0, generated = 0;
        for (int i = 0; i < 3; i++)
        {
            var r = await Complete(s, new { prompt = $"Once upon a time {i}", max_tokens = 12, temperature = 0, ignore_eos = true });
            prompt += r["usage"]!["prompt_tokens"]!.GetValue<int>();
            generated += r["usage"]!["completion_tokens"]!.GetValue<int>();
        }
        Assert.Equal(HttpStatusCode.BadRequest, (await s.Http.PostAsJsonAsync("/v1/completions", new { prompt = "Hi", max_tokens = 0 })).StatusCode);
        // one slot, no queue: a second request while the first streams is refused with 429
        using (var streaming = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = s.BaseUri })
        {
            using var first = await streaming.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
            { Content = JsonContent.Create(new { prompt = "Once", max_tokens = 1000, temperature = 0, ignore_eos = true, stream = true }) }, HttpCompletionOption.ResponseHeadersRead);
            using var body = new StreamReader(await first.Content.ReadAsStreamAsync());
            await body.ReadLineAsync(); // the first chunk: the request holds the slot
            Assert.Equal(HttpStatusCode.TooManyRequests, (await s.Http.PostAsJsonAsync("/v1/completions", new { prompt = "Hi", max_tokens = 2 })).StatusCode);
        } // the client goes away mid-stream (its connection closed, not drained): an abort
        var m = await WaitFor(s, m => m.Value("sio_requests_total", new(model) { ["finished_reason"] = "abort" }) == 1);

        Assert.Equal(3, m.Value("sio_requests_total", new(model) { ["finished_reason"] = "length" }));
        using (var loaded = Generation.Model.Load(dir))
            Assert.Equal(prompt + loaded.Tokenizer.Encode("Once").Count, m.Value("sio_prompt_tokens_total", model)); // the aborted request's prompt counts too
        Assert.True(m.Value("sio_generation_tokens_total", model) >= generated + 1);
        foreach (var h in new[] { "sio_time_to_first_token_seconds", "sio_inter_token_latency_seconds", "sio_time_per_output_token_seconds", "sio_e2e_request_latency_seconds", "sio_request_queue_time_seconds" })
        {
            Assert.Equal("histogram", m.Types[h]);
            Assert.True(m.Value($"{h}_count", model) >= 3, h);
            var sum = m.Value($"{h}_sum", model);
            Assert.True(sum > 0 && sum / m.Value($"{h}_count", model) < 30, $"{h}: a mean of {sum / m.Value($"{h}_count", model)} s is not in seconds");
            Assert.Equal(m.Value($"{h}_count", model), m.Value($"{h}_bucket", new(model) { ["le"] = "+Inf" }));
        }
        Assert.Equal(4, m.Value("sio_time_to_first_token_seconds_count", model));
        // every token after a request's first is one inter-token gap
        Assert.Equal(m.Value("sio_generation_tokens_total", model) - 4, m.Value("sio_inter_token_latency_seconds_count", model));
        Assert.Equal(0, m.Value("sio_num_requests_running", model));
        Assert.Equal(0, m.Value("sio_num_requests_waiting", model));
        Assert.True(m.Types.ContainsKey("sio_kv_cache_usage_ratio"), string.Join("\n", m.Types.Keys));
        Assert.Equal("gauge", m.Types["sio_kv_cache_usage_ratio"]);
        Assert.InRange(m.Value("sio_kv_cache_usage_ratio", model), 0, 1);
        Assert.True(m.Value("sio_http_responses_total", new() { ["code"] = "400", ["class"] = "4xx" }) >= 1);
        Assert.True(m.Value("sio_http_responses_total", new() { ["code"] = "429", ["class"] = "4xx" }) >= 1);
        Assert.Contains(m.Samples, x => x.Name == "target_info" && x.Labels.GetValueOrDefault("service_name") == "sio" && x.Labels.GetValueOrDefault("sio_host") == "sio serve");
    }

    [Fact]
    public async Task SpansReachAnOtlpCollectorFromServingAndFromEachPipelineStep()
    {
        await using var collector = new OtlpReceiver();
        int port = FreePort();
        var serveModel = UniqueModel("traced-model");
        using (var serve = new SioProcess(["serve", serveModel, "--port", port.ToString(), "--speculative", "ngram", "--draft-tokens", "4"], collector.Environment))
        {
            var baseUri = new Uri($"http://127.0.0.1:{port}/");
            await serve.WaitReadyAsync(baseUri);
            using var http = new HttpClient { BaseAddress = baseUri };
            var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
            {
                Content = JsonContent.Create(new { prompt = "Lily and Ben. Lily and Ben. Lily and Ben. Lily and Ben.", max_tokens = 24, temperature = 0, ignore_eos = true }),
            };
            const string caller = "4bf92f3577b34da6a3ce929d0e0e4736";
            request.Headers.Add("traceparent", $"00-{caller}-00f067aa0ba902b7-01");
            var answer = JsonNode.Parse(await (await http.SendAsync(request)).Content.ReadAsStringAsync())!;
            int proposed = answer["sio"]?["speculative"]?["proposed"]?.GetValue<int>() ?? 0;

            // the request's span ends last (after the answer is written), so it may come in a later export than its children
            var spans = await collector.WaitAsync(x => x.Any(s => s.Name == "decode") && x.Any(s => s.Name == "text_completion traced-model"), TimeSpan.FromSeconds(30));
            var root = spans.Single(x => x.Name == "text_completion traced-model");
            Assert.Equal(caller, root.TraceId); // joined the caller's trace
            Assert.Equal("00f067aa0ba902b7", root.ParentSpanId);
            Assert.Equal(2, root.Kind); // SERVER
            Assert.Equal("text_completion", root.Attributes["gen_ai.operation.name"]);
            Assert.Equal("traced-model", root.Attributes["gen_ai.request.model"]);
            Assert.Equal(answer["usage"]!["prompt_tokens"]!.GetValue<int>(), (long)root.Attributes["gen_ai.usage.input_tokens"]);
            Assert.Equal(24L, root.Attributes["gen_ai.usage.output_tokens"]);
            Assert.Equal(["length"], (object[])root.Attributes["gen_ai.response.finish_reasons"]);
            Assert.Equal("sio", root.Resource["service.name"]);
            var steps = new[] { "queue", "prefill", "decode" }.Select(n => spans.Single(x => x.Name == n)).ToList();
            Assert.All(steps, x => Assert.Equal(root.SpanId, x.ParentSpanId));
            Assert.True(steps[0].EndNs <= steps[1].StartNs + 1_000_000 && steps[1].EndNs <= steps[2].StartNs + 1_000_000, "queue, prefill and decode follow each other");
            Assert.True(root.StartNs <= steps[0].StartNs && steps[2].EndNs <= root.EndNs + 1_000_000);
            var decode = steps[2];
            var verifications = spans.Where(x => x.Name == "speculative verification").ToList();
            Assert.True(proposed > 0, "prompt lookup proposed no draft on a repetitive prompt");
            Assert.NotEmpty(verifications);
            Assert.All(verifications, v => Assert.Equal(decode.SpanId, v.ParentSpanId));
            Assert.Equal(proposed, verifications.Sum(v => (long)v.Attributes["sio.draft.proposed"]));
        }

        // an optimization run: one span per step, each tagged with the run
        var root2 = TestPaths.TempDir("traced-run");
        using (var optimize = new SioProcess(["optimize", TestPaths.Stories260K, "--dataset", TestPaths.TinyStoriesDev, "--recipe", "rtn-int4",
            "--gate", "max-perplexity-increase=1000,min-speedup=0.05", "--concurrency", "1", "--requests", "2", "--max-new-tokens", "8",
            "--store", Path.Combine(root2, "store"), "--work-dir", Path.Combine(root2, "work"), "--out", Path.Combine(root2, "out")], collector.Environment))
        {
            Assert.True(optimize.WaitForExit(TimeSpan.FromMinutes(5)), optimize.Output);
            Assert.True(optimize.ExitCode == 0, optimize.Output);
        }
        var steps2 = await collector.WaitAsync(x => x.Any(s => s.Name == "sio publish"), TimeSpan.FromSeconds(30));
        var run = steps2.Where(x => x.Name.StartsWith("sio ")).ToList();
        foreach (var step in new[] { "validate", "import", "quantize", "benchmark", "publish" })
            Assert.Contains(run, x => x.Name == $"sio {step}" && (string)x.Attributes["sio.step"] == step);
        Assert.Single(run.Select(x => (string)x.Attributes["sio.run.id"]).Distinct());
        Assert.Equal(2, run.Count(x => x.Name == "sio benchmark")); // baseline and rtn-int4
        Assert.All(run, x => Assert.Equal("sio optimize", x.Resource["sio.host"]));
        Directory.Delete(root2, true);
    }

    static int FreePort()
    {
        var l = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    static async Task<JsonNode> Complete(ServerFixture s, object body)
    {
        var r = await s.Http.PostAsJsonAsync("/v1/completions", body);
        var text = await r.Content.ReadAsStringAsync();
        Assert.True(r.IsSuccessStatusCode, text);
        return JsonNode.Parse(text)!;
    }

    static async Task<Scrape> WaitFor(ServerFixture s, Func<Scrape, bool> done)
    {
        for (int i = 0; ; i++)
        {
            var m = Scrape.Parse(await s.Http.GetStringAsync("/metrics"));
            if (done(m) || i == 100) return m;
            await Task.Delay(100);
        }
    }
}

/// <summary>A Prometheus text exposition, parsed: each sample's name, labels and value, and each family's TYPE.</summary>
public sealed record Scrape(IReadOnlyList<Scrape.Sample> Samples, IReadOnlyDictionary<string, string> Types)
{
    public sealed record Sample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

    public static Scrape Parse(string text)
    {
        var samples = new List<Sample>();
        var types = new Dictionary<string, string>();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.StartsWith("# TYPE ")) { var p = line.Split(' '); types[p[2]] = p[3]; continue; }
            if (line.StartsWith('#')) continue;
            int brace = line.IndexOf('{'), space = line.LastIndexOf(' ');
            var labels = new Dictionary<string, string>();
            string name;
            if (brace >= 0 && brace < space)
            {
                name = line[..brace];
                int close = line.LastIndexOf('}');
                foreach (System.Text.RegularExpressions.Match m in System.Text.RegularExpressions.Regex.Matches(line[(brace + 1)..close], "(\\w+)=\"((?:[^\"\\\\]|\\\\.)*)\""))
                    labels[m.Groups[1].Value] = m.Groups[2].Value;
                space = line.IndexOf(' ', close);
            }
            else name = line[..line.IndexOf(' ')];
            var value = line[(space + 1)..].Split(' ')[0];
            samples.Add(new Sample(name, labels, value == "+Inf" ? double.PositiveInfinity : double.Parse(value, CultureInfo.InvariantCulture)));
        }
        return new Scrape(samples, types);
    }

    /// <summary>The sum of the samples named so whose labels include every given one (0 when there is none).</summary>
    public double Value(string name, Dictionary<string, string> labels) =>
        Samples.Where(s => s.Name == name && labels.All(l => s.Labels.GetValueOrDefault(l.Key) == l.Value)).Sum(s => s.Value);
}
