using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using OpenAI.Chat;
using Sio.Cli.Serving;
using Sio.Generation;
using Sio.Serving;

namespace Sio.Tests;

/// <summary>A real server on 127.0.0.1 (a free port), a real HttpClient.</summary>
public sealed class ServerFixture : IAsyncDisposable
{
    public WebApplication App { get; }
    public HttpClient Http { get; }
    public Uri BaseUri { get; }

    public ServerFixture(string modelDir, ServeOptions? options = null, string? apiKey = null, bool allowLocalPaths = false)
    {
        App = SioServer.Build(new ServerConfig(modelDir, "127.0.0.1", 0, apiKey, options, AllowLocalPaths: allowLocalPaths));
        App.StartAsync().GetAwaiter().GetResult();
        var address = App.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        BaseUri = new Uri(address);
        Http = new HttpClient { BaseAddress = BaseUri, Timeout = TimeSpan.FromSeconds(60) };
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}

[Collection("stories260K")]
[Trait("Category", "e2e")]
public class ServingTests(Stories260KFixture stories)
{
    static StringContent Json(object o) => JsonContent.Create(o) is var c ? new StringContent(c.ReadAsStringAsync().Result, System.Text.Encoding.UTF8, "application/json") : null!;

    string Greedy(string prompt, int maxTokens)
    {
        using var model = Model.Load(stories.ModelDir);
        return TextGeneration.Generate(model, model.Tokenizer.Encode(prompt), new GenerationOptions { MaxTokens = maxTokens }).Text;
    }

    [Fact]
    public async Task CompletionsStreamInOpenAIsFormatAndMatchTheEngine()
    {
        await using var s = new ServerFixture(stories.ModelDir);
        var expected = Greedy("Once upon a time", 30);

        var plain = await s.Http.PostAsync("/v1/completions", Json(new { prompt = "Once upon a time", max_tokens = 30, temperature = 0 }));
        Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
        var j = JsonNode.Parse(await plain.Content.ReadAsStringAsync())!;
        Assert.Equal("text_completion", j["object"]!.GetValue<string>());
        Assert.Equal(expected, j["choices"]![0]!["text"]!.GetValue<string>());
        Assert.Equal(5, j["usage"]!["prompt_tokens"]!.GetValue<int>());
        Assert.Equal(30, j["usage"]!["completion_tokens"]!.GetValue<int>());

        var streamed = await s.Http.PostAsync("/v1/completions", Json(new { prompt = "Once upon a time", max_tokens = 30, temperature = 0, stream = true }));
        Assert.Equal("text/event-stream", streamed.Content.Headers.ContentType!.MediaType);
        var events = (await streamed.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.All(events, e => Assert.StartsWith("data: ", e));
        Assert.Equal("data: [DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e["data: ".Length..])!).ToList();
        Assert.Equal(expected, string.Concat(chunks.Select(c => c["choices"]![0]!["text"]!.GetValue<string>())));
        Assert.All(chunks[..^1], c => Assert.Null(c["choices"]![0]!["finish_reason"]));
        Assert.Equal("length", chunks[^1]["choices"]![0]!["finish_reason"]!.GetValue<string>());
        Assert.Single(chunks.Select(c => c["id"]!.GetValue<string>()).Distinct());
    }

    [Fact]
    public async Task TheOfficialOpenAIClientWorks()
    {
        await using var s = new ServerFixture(stories.ModelDir);
        var models = JsonNode.Parse(await s.Http.GetStringAsync("/v1/models"))!;
        var id = models["data"]![0]!["id"]!.GetValue<string>();
        var client = new OpenAIClient(new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(s.BaseUri, "/v1") }).GetChatClient(id);
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 24 };
        ChatCompletion reply = await client.CompleteChatAsync([new UserChatMessage("Once upon a time")], options);
        Assert.Equal(Greedy("Once upon a time\n\n", 24), reply.Content[0].Text);
        Assert.Equal(24, reply.Usage.OutputTokenCount);

        var text = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in client.CompleteChatStreamingAsync([new UserChatMessage("Once upon a time")], options))
        {
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
            finish ??= update.FinishReason;
        }
        Assert.Equal(reply.Content[0].Text, text.ToString());
        Assert.Equal(ChatFinishReason.Length, finish);
    }

    [Fact]
    public async Task ConcurrentRequestsGiveTheSameGreedyOutputAsSingleOnes()
    {
        await using var s = new ServerFixture(stories.ModelDir, new ServeOptions { MaxConcurrent = 3, QueueCapacity = 16 });
        var prompts = new[] { "Once upon a time", "The cat", "Lily and Ben went to the park", "One day, a big dog", "Tom had a red ball", "The sun was", "Sara liked to", "In the forest" };
        var expected = prompts.Select(p => Greedy(p, 25)).ToArray();
        var replies = await Task.WhenAll(prompts.Select(p => s.Http.PostAsync("/v1/completions", Json(new { prompt = p, max_tokens = 25, temperature = 0 }))));
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(HttpStatusCode.OK, replies[i].StatusCode);
            Assert.Equal(expected[i], JsonNode.Parse(await replies[i].Content.ReadAsStringAsync())!["choices"]![0]!["text"]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task ChunkedPrefillInterleavesAndKeepsTheGreedyOutput()
    {
        // 4-token chunks: every prompt below is read over several steps while the others decode (and draft)
        foreach (var drafter in new[] { "none", "ngram" })
        {
            await using var s = new ServerFixture(stories.ModelDir, new ServeOptions
            {
                MaxConcurrent = 3, QueueCapacity = 16, PrefillChunkTokens = 4, Speculative = new Speculative.SpeculativeOptions { Drafter = drafter },
            });
            var prompts = new[] { "Once upon a time, there was a little girl named Lily who loved to play in the park with her dog", "The cat", "Tom had a red ball and a blue car. He liked to play with them every day", "One day" };
            var replies = await Task.WhenAll(prompts.Select(p => s.Http.PostAsync("/v1/completions", Json(new { prompt = p, max_tokens = 30, temperature = 0 }))));
            for (int i = 0; i < prompts.Length; i++)
                Assert.Equal(Greedy(prompts[i], 30), JsonNode.Parse(await replies[i].Content.ReadAsStringAsync())!["choices"]![0]!["text"]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task ADraftModelDraftsAloneAndMovesIntoTheBatchWhenCompanyArrives()
    {
        await using var s = new ServerFixture(stories.ModelDir, new ServeOptions { MaxConcurrent = 3, Speculative = new Speculative.SpeculativeOptions { Drafter = "self-int4" } });
        const string first = "Once upon a time, there was a little girl named Lily";
        var alone = JsonNode.Parse(await (await s.Http.PostAsync("/v1/completions", Json(new { prompt = first, max_tokens = 60, temperature = 0 }))).Content.ReadAsStringAsync())!;
        Assert.Equal(Greedy(first, 60), alone["choices"]![0]!["text"]!.GetValue<string>());
        Assert.True(alone["sio"]!["speculative"]!["proposed"]!.GetValue<long>() > 0); // it drafted with the int4 self-draft
        // a long request starts alone (with its draft model); two more arrive and it moves into the batch mid-answer
        var engine = s.App.Services.GetRequiredService<Deployments>().Current!.Engine;
        var longOne = await s.Http.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = Json(new { prompt = first, max_tokens = 300, temperature = 0, stream = true }) },
            HttpCompletionOption.ResponseHeadersRead);
        var reader = new StreamReader(await longOne.Content.ReadAsStreamAsync());
        var firstEvent = await reader.ReadLineAsync(); // its first token is out: it is decoding, alone, on its own decoder
        Assert.Equal(0, engine.MovesToBatch);
        var others = new[] { "The cat", "Tom had a red ball" }.Select(p => (p, s.Http.PostAsync("/v1/completions", Json(new { prompt = p, max_tokens = 40, temperature = 0 })))).ToList();
        var events = (firstEvent + "\n" + await reader.ReadToEndAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Where(e => e != "data: [DONE]");
        Assert.Equal(Greedy(first, 300), string.Concat(events.Select(e => JsonNode.Parse(e["data: ".Length..])!["choices"]![0]!["text"]!.GetValue<string>())));
        Assert.Equal(1, engine.MovesToBatch); // the engine saw the move, and the answer is still exactly greedy decoding's
        foreach (var (p, reply) in others)
            Assert.Equal(Greedy(p, 40), JsonNode.Parse(await (await reply).Content.ReadAsStringAsync())!["choices"]![0]!["text"]!.GetValue<string>());
    }

    [Fact]
    public async Task ASpeculativeServerAnswersLikeTheEngine()
    {
        await using var s = new ServerFixture(stories.ModelDir, new ServeOptions { MaxConcurrent = 2, Speculative = new Speculative.SpeculativeOptions { Drafter = "ngram" } });
        var prompts = new[] { "Once upon a time", "The cat sat on the mat. The cat", "Tom had a red ball" };
        var replies = await Task.WhenAll(prompts.Select(p => s.Http.PostAsync("/v1/completions", Json(new { prompt = p, max_tokens = 40, temperature = 0 }))));
        long proposedInBatch = 0;
        for (int i = 0; i < prompts.Length; i++)
        {
            var body = JsonNode.Parse(await replies[i].Content.ReadAsStringAsync())!;
            Assert.Equal(Greedy(prompts[i], 40), body["choices"]![0]!["text"]!.GetValue<string>());
            proposedInBatch += body["sio"]?["speculative"]?["proposed"]?.GetValue<long>() ?? 0;
        }
        // the rows drafted inside the batch (each with its own acceptance) and still answered exactly as plain decoding
        Assert.True(proposedInBatch > 0);
        // alone on an idle engine, a request is decoded speculatively
        var alone = await s.Http.PostAsync("/v1/completions", Json(new { prompt = "The cat sat on the mat. The cat sat on the mat. The cat", max_tokens = 40, temperature = 0 }));
        Assert.Equal(Greedy("The cat sat on the mat. The cat sat on the mat. The cat", 40), JsonNode.Parse(await alone.Content.ReadAsStringAsync())!["choices"]![0]!["text"]!.GetValue<string>());
        var metrics = await s.Http.GetStringAsync("/metrics");
        var proposed = metrics.Split('\n').First(l => l.StartsWith("sio_draft_tokens_proposed_total"));
        Assert.True(double.Parse(proposed.Split(' ')[^1], System.Globalization.CultureInfo.InvariantCulture) > 0, proposed);
    }

    [Fact]
    public async Task TheBenchmarkMeasuresAServerOverHttp()
    {
        await using var s = new ServerFixture(stories.ModelDir, new ServeOptions { MaxConcurrent = 4 });
        var dir = TestPaths.TempDir("httpbench");
        try
        {
            var (exit, output, err) = CliTests.Sio("benchmark", stories.ModelDir, "--endpoint", s.BaseUri.ToString(), "--dataset", TestPaths.OpenOrcaDev,
                "--concurrency", "1,4", "--requests", "6", "--max-new-tokens", "16", "--prompt-tokens-min", "8", "--prompt-tokens-max", "400", "--out", Path.Combine(dir, "r"), "--json");
            Assert.True(exit == 0, err);
            var r = JsonNode.Parse(output)!;
            Assert.Equal("http", r["config"]!["mode"]!.GetValue<string>());
            foreach (var l in r["levels"]!.AsArray())
            {
                Assert.Equal(6, l!["requests"]!.GetValue<int>());
                Assert.Equal(0, l["errors"]!.GetValue<int>());
                Assert.True(l["itl_ms"]!["p50"]!.GetValue<double>() > 0);
                Assert.True(l["output_tokens_per_second"]!.GetValue<double>() > 0);
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public async Task AHotSwapServesNewRequestsFromTheNewModelAndLetsInFlightOnesFinish()
    {
        var dir = TestPaths.TempDir("swap");
        try
        {
            var next = Path.Combine(dir, "next");
            Quantization.Quantizer.Run(stories.ModelDir, next, new Quantization.QuantizationConfig { Method = "rtn" });
            await using var s = new ServerFixture(stories.ModelDir, new ServeOptions { MaxConcurrent = 2 }, allowLocalPaths: true);
            var deployments = s.App.Services.GetRequiredService<Deployments>();
            var first = deployments.Current!;

            // a request in flight on the first model: accepted, its body still arriving (decoding 300 tokens of this tiny
            // model would end before the swap does)
            var body = new GatedContent("{\"prompt\": \"Once upon a time\", \"max_tokens\": 300, \"temperature\": 0, \"stream\": true, \"ignore_eos\": true}");
            var sending = s.Http.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = body }, HttpCompletionOption.ResponseHeadersRead);
            for (int i = 0; i < 500 && first.InFlight == 0; i++) await Task.Delay(10);
            Assert.Equal(1, first.InFlight);

            var swap = await s.Http.PostAsync("/api/deployments", Json(new { model = next }));
            Assert.Equal(HttpStatusCode.OK, swap.StatusCode);
            Assert.Equal("next", JsonNode.Parse(await s.Http.GetStringAsync("/v1/models"))!["data"]![0]!["id"]!.GetValue<string>());
            var fresh = JsonNode.Parse(await (await s.Http.PostAsync("/v1/completions", Json(new { prompt = "The cat", max_tokens = 5, temperature = 0 }))).Content.ReadAsStringAsync())!;
            Assert.Equal("next", fresh["model"]!.GetValue<string>());
            Assert.False(first.Disposed, "the old model was released while a request was still on it");

            body.Release();
            var response = await sending;
            var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            var rest = await reader.ReadToEndAsync();
            Assert.EndsWith("data: [DONE]\n\n", rest);
            var chunks = rest.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Where(e => e != "data: [DONE]").Select(e => JsonNode.Parse(e["data: ".Length..])!).ToList();
            Assert.Equal(first.Id, chunks[^1]["model"]!.GetValue<string>());
            Assert.Equal(300, chunks[^1]["usage"]!["completion_tokens"]!.GetValue<int>());
            response.Dispose();
            for (int i = 0; i < 100 && !first.Disposed; i++) await Task.Delay(20);
            Assert.True(first.Disposed, "the old model was not released after its last request");

            var bad = await s.Http.PostAsync("/api/deployments", Json(new { model = Path.Combine(dir, "nothing") }));
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            Assert.Equal("next", JsonNode.Parse(await s.Http.GetStringAsync("/v1/models"))!["data"]![0]!["id"]!.GetValue<string>());
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public async Task CancellingARequestFreesItsSlot()
    {
        await using var s = new ServerFixture(stories.ModelDir, new ServeOptions { MaxConcurrent = 1, QueueCapacity = 0 });
        using (var cts = new CancellationTokenSource())
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = Json(new { prompt = "Once upon a time", max_tokens = 500, stream = true }) };
            var response = await s.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
            var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));
            Assert.StartsWith("data: ", await reader.ReadLineAsync(cts.Token));
            cts.Cancel();
            response.Dispose();
        }
        var engine = s.App.Services.GetRequiredService<Deployments>().Current!.Engine;
        for (int i = 0; i < 100 && engine.Active > 0; i++) await Task.Delay(50);
        Assert.Equal(0, engine.Active);
        var next = await s.Http.PostAsync("/v1/completions", Json(new { prompt = "The cat", max_tokens = 5, temperature = 0 }));
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
    }

    [Fact]
    public async Task OverloadAnswers429AndNoRequestIsLostOrAnsweredTwice()
    {
        await using var s = new ServerFixture(stories.ModelDir, new ServeOptions { MaxConcurrent = 1, QueueCapacity = 1 });
        var replies = await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => s.Http.PostAsync("/v1/completions", Json(new { prompt = "Once upon a time", max_tokens = 400, temperature = 0 }))));
        var ok = replies.Where(r => r.StatusCode == HttpStatusCode.OK).ToList();
        var busy = replies.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests).ToList();
        Assert.Equal(10, ok.Count + busy.Count);
        Assert.NotEmpty(busy);
        Assert.InRange(ok.Count, 1, 9);
        Assert.All(busy, r => Assert.Equal("1", r.Headers.RetryAfter!.ToString()));
        var ids = new List<string>();
        foreach (var r in ok) ids.Add(JsonNode.Parse(await r.Content.ReadAsStringAsync())!["id"]!.GetValue<string>());
        Assert.Equal(ids.Count, ids.Distinct().Count());
    }

    [Fact]
    public async Task AFewHundredRequestsOverLoopbackWithoutAnError()
    {
        await using var s = new ServerFixture(stories.ModelDir, new ServeOptions { MaxConcurrent = 2, QueueCapacity = 64 });
        using var gate = new SemaphoreSlim(16);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var statuses = await Task.WhenAll(Enumerable.Range(0, 300).Select(async i =>
        {
            await gate.WaitAsync();
            try
            {
                var r = await s.Http.PostAsync("/v1/completions", Json(new { prompt = $"Story {i}: once upon a time", max_tokens = 8, temperature = 0.7, seed = i }));
                var body = JsonNode.Parse(await r.Content.ReadAsStringAsync())!;
                return (r.StatusCode, body["usage"]?["completion_tokens"]?.GetValue<int>() ?? -1);
            }
            finally { gate.Release(); }
        }));
        Assert.All(statuses, x => Assert.Equal(HttpStatusCode.OK, x.StatusCode));
        Assert.All(statuses, x => Assert.InRange(x.Item2, 1, 8));
        Assert.True(clock.Elapsed < TimeSpan.FromMinutes(2));
    }

    [Fact]
    public async Task BadRequestsAre400WithTheFieldNamed()
    {
        await using var s = new ServerFixture(stories.ModelDir);
        foreach (var (body, param) in new (object, string?)[]
        {
            (new { max_tokens = 5 }, "prompt"),
            (new { prompt = "Hi", max_tokens = 0 }, "max_tokens"),
            (new { prompt = "Hi", max_tokens = 600 }, "max_tokens"),
            (new { prompt = "Hi", n = 9 }, "n"),
            (new { prompt = "Hi", temperature = 5 }, "temperature"),
            (new { prompt = string.Join(" ", Enumerable.Repeat("story", 600)), max_tokens = 4 }, "prompt"),
        })
        {
            var r = await s.Http.PostAsync("/v1/completions", Json(body));
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
            var e = JsonNode.Parse(await r.Content.ReadAsStringAsync())!["error"]!;
            Assert.Equal("invalid_request_error", e["type"]!.GetValue<string>());
            Assert.Equal(param, e["param"]?.GetValue<string>());
        }
        var chat = await s.Http.PostAsync("/v1/chat/completions", Json(new { messages = Array.Empty<object>() }));
        Assert.Equal(HttpStatusCode.BadRequest, chat.StatusCode);
        var broken = await s.Http.PostAsync("/v1/completions", new StringContent("{not json", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, broken.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await s.Http.GetAsync("/healthz")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await s.Http.PostAsync("/v1/completions", Json(new { prompt = "Once upon a time", max_tokens = 6 }))).StatusCode);
        var metrics = await s.Http.GetStringAsync("/metrics");
        foreach (var name in new[] { "sio_num_requests_waiting", "sio_num_requests_running", "sio_generation_tokens_total", "sio_requests_total", "sio_time_to_first_token_seconds", "sio_inter_token_latency_seconds" })
            Assert.Contains(name, metrics);
        Assert.Equal(HttpStatusCode.OK, (await s.Http.GetAsync("/readyz")).StatusCode);
    }

    [Fact]
    public async Task AKeyIsRequiredOffLoopbackAndCheckedWhenSet()
    {
        var e = Assert.Throws<SioException>(() => SioServer.Build(new ServerConfig(stories.ModelDir, "0.0.0.0", 0, null)));
        Assert.Contains("--api-key", e.Message);
        await using var s = new ServerFixture(stories.ModelDir, apiKey: "secret");
        Assert.Equal(HttpStatusCode.Unauthorized, (await s.Http.GetAsync("/v1/models")).StatusCode);
        var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "secret");
        Assert.Equal(HttpStatusCode.OK, (await s.Http.SendAsync(request)).StatusCode);
    }

    [Fact]
    public void AMissingExecutionProviderIsRefusedClearly()
    {
        var (exit, _, err) = CliTests.Sio("serve", stories.ModelDir, "--provider", "cuda", "--port", "0");
        Assert.Equal(1, exit);
        Assert.Contains("CUDAExecutionProvider", err);
        var (exit2, _, err2) = CliTests.Sio("serve", stories.ModelDir, "--provider", "npu", "--port", "0");
        Assert.Equal(1, exit2);
        Assert.Contains("unknown execution provider npu", err2);
    }

    [Fact]
    public async Task TheChatTemplateComesFromTheTokenizerConfig()
    {
        var dir = TestPaths.TempDir("template");
        try
        {
            var model = Path.Combine(dir, "chat");
            Directory.CreateDirectory(model);
            foreach (var f in Directory.GetFiles(stories.ModelDir)) File.Copy(f, Path.Combine(model, Path.GetFileName(f)));
            var config = Path.Combine(model, "tokenizer_config.json");
            var j = JsonNode.Parse(File.ReadAllText(config))!;
            j["chat_template"] = "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}";
            File.WriteAllText(config, j.ToJsonString());
            Assert.False(ChatTemplate.ForModel(model).IsPlain);
            Assert.True(ChatTemplate.ForModel(stories.ModelDir).IsPlain);

            await using var s = new ServerFixture(model);
            var messages = new object[] { new { role = "system", content = "Be kind." }, new { role = "user", content = "Tell a story." }, new { role = "assistant", content = "Once upon a time." }, new { role = "user", content = "More." } };
            var r = JsonNode.Parse(await (await s.Http.PostAsync("/v1/chat/completions", Json(new { messages, max_tokens = 4, temperature = 0 }))).Content.ReadAsStringAsync())!;
            using var m = Model.Load(model);
            // the template itself, rendered as Jinja: the system message takes the else branch
            var expected = m.Tokenizer.EncodeWithSpecialTokens("<s>Be kind.</s>[INST] Tell a story. [/INST]Once upon a time.</s>[INST] More. [/INST]", addBos: false);
            Assert.Equal(expected.Count, r["usage"]!["prompt_tokens"]!.GetValue<int>());
            Assert.Equal(2, expected.Count(t => t == m.Config.EosTokenId)); // "</s>" became the EOS id, not its characters
            Assert.Equal(1, expected.Count(t => t == m.Config.BosTokenId)); // the template's own "<s>", no second BOS
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void StopSequencesNeverLeakAPrefix()
    {
        var m = new StopMatcher([" ball", "END"]);
        var sent = string.Concat(new[] { "She saw a", " b", "a", "ll and" }.Select(m.Feed)) + m.Flush();
        Assert.Equal("She saw a", sent);
        Assert.True(m.Stopped);
        var n = new StopMatcher(["END"]);
        Assert.Equal("abc ", n.Feed("abc E")); // "E" could begin "END": held back
        Assert.Equal("EX", n.Feed("X"));      // it did not
        Assert.False(n.Stopped);
    }
}

[Collection("stories260K")]
[Trait("Category", "e2e")]
public class ChatClientTests(Stories260KFixture stories)
{
    [Fact]
    public async Task TheIChatClientAdapterAnswersAndStreams()
    {
        using var model = Model.Load(stories.ModelDir);
        using Microsoft.Extensions.AI.IChatClient client = new SioChatClient(model);
        var options = new Microsoft.Extensions.AI.ChatOptions { MaxOutputTokens = 30, Temperature = 0 };
        Microsoft.Extensions.AI.ChatMessage[] once = [new(Microsoft.Extensions.AI.ChatRole.User, "Once upon a time")];
        var reply = await client.GetResponseAsync(once, options);
        var expected = TextGeneration.Generate(model, model.Tokenizer.Encode("Once upon a time\n\n"), new GenerationOptions { MaxTokens = 30 }).Text;
        Assert.Equal(expected, reply.Text);
        Assert.Equal(30, reply.Usage!.OutputTokenCount);
        Assert.Equal(Microsoft.Extensions.AI.ChatFinishReason.Length, reply.FinishReason);

        var streamed = new System.Text.StringBuilder();
        Microsoft.Extensions.AI.ChatFinishReason? finish = null;
        await foreach (var u in client.GetStreamingResponseAsync(once, options))
        {
            streamed.Append(u.Text);
            finish ??= u.FinishReason;
        }
        Assert.Equal(expected, streamed.ToString());
        Assert.Equal(Microsoft.Extensions.AI.ChatFinishReason.Length, finish);

        var stopped = await client.GetResponseAsync(once, new Microsoft.Extensions.AI.ChatOptions { MaxOutputTokens = 60, Temperature = 0, StopSequences = ["."] });
        Assert.Equal(expected[..expected.IndexOf('.')], stopped.Text);
        Assert.Equal(Microsoft.Extensions.AI.ChatFinishReason.Stop, stopped.FinishReason);
    }
}

/// <summary>A request body sent in two halves: the second only after <see cref="Release"/>.</summary>
sealed class GatedContent(string json) : HttpContent
{
    readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Release() => _gate.TrySetResult();

    protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(json);
        await stream.WriteAsync(bytes.AsMemory(0, bytes.Length / 2));
        await stream.FlushAsync();
        await _gate.Task;
        await stream.WriteAsync(bytes.AsMemory(bytes.Length / 2));
    }

    protected override bool TryComputeLength(out long length) { length = 0; return false; }
}
