using System.ClientModel;
using System.Net;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;
using Sio.Generation;

#pragma warning disable OPENAI001 // ChatCompletionOptions.Seed is marked experimental by the client library

namespace Sio.Tests;

/// <summary>
/// The OpenAI parameters as the official .NET client sends them to `sio serve`: logprobs (plain and streamed), seed,
/// penalties, logit_bias, stream usage, /v1/models/{id}; and what sio does not implement is refused by name, never
/// ignored. Each effect is checked against the model itself (stories260K, a trained model), not a recorded answer.
/// </summary>
[Trait("Category", "e2e")]
[Collection("stories260K")]
public class OpenAiParameterTests(Stories260KFixture stories)
{
    const string Prompt = "Once upon a time";

    static Serving.Deployment Served(ServerFixture s) => ((Serving.Deployments)s.App.Services.GetService(typeof(Serving.Deployments))!).Current!;

    static ChatClient Chat(ServerFixture s, string? model = null) =>
        new OpenAIClient(new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(s.BaseUri, "/v1") }).GetChatClient(model ?? Served(s).Id);

    static StringContent Json(object o) => new(System.Text.Json.JsonSerializer.Serialize(o), System.Text.Encoding.UTF8, "application/json");

    [Fact]
    public async Task LogprobsAreTheModelsOwnLogSoftmax()
    {
        await using var s = new ServerFixture(stories.ModelDir);
        var answer = (await Chat(s).CompleteChatAsync([ChatMessage.CreateUserMessage(Prompt)],
            new ChatCompletionOptions { MaxOutputTokenCount = 8, Temperature = 0, IncludeLogProbabilities = true, TopLogProbabilityCount = 3 })).Value;
        var tokens = answer.ContentTokenLogProbabilities;
        Assert.Equal(answer.Usage.OutputTokenCount, tokens.Count);
        Assert.Equal(answer.Content[0].Text, string.Concat(tokens.Select(t => t.Token)));
        foreach (var t in tokens)
        {
            Assert.Equal(3, t.TopLogProbabilities.Count);
            Assert.Equal(t.Token, t.TopLogProbabilities[0].Token); // greedy: the chosen token is the likeliest
            Assert.Equal(t.LogProbability, t.TopLogProbabilities[0].LogProbability);
            Assert.True(t.TopLogProbabilities[1].LogProbability <= t.LogProbability && t.LogProbability <= 0);
        }
        // the first token's log-probability, recomputed from the model's logits for the same prompt ids
        var deployment = Served(s);
        var ids = deployment.ChatTemplate.Tokenize(deployment.Model.Tokenizer, deployment.ChatTemplate.Render([new JsonObject { ["role"] = "user", ["content"] = Prompt }], addGenerationPrompt: true));
        using var g = new Generator(deployment.Model);
        g.AppendTokens([.. ids]);
        var logits = g.LastLogits.ToArray();
        double max = logits.Max(), logZ = max + Math.Log(logits.Sum(l => Math.Exp(l - max)));
        Assert.Equal(logits.Max() - logZ, tokens[0].LogProbability, 3);

        // streamed: every token's logprob arrives with its text, and the usage comes at the end
        var streamed = new List<ChatTokenLogProbabilityDetails>();
        ChatTokenUsage? usage = null;
        await foreach (var u in Chat(s).CompleteChatStreamingAsync([ChatMessage.CreateUserMessage(Prompt)],
            new ChatCompletionOptions { MaxOutputTokenCount = 8, Temperature = 0, IncludeLogProbabilities = true, TopLogProbabilityCount = 2 }))
        {
            streamed.AddRange(u.ContentTokenLogProbabilities);
            usage ??= u.Usage;
        }
        Assert.Equal(tokens.Select(t => (t.Token, t.LogProbability)), streamed.Select(t => (t.Token, t.LogProbability)));
        Assert.Equal(8, usage!.OutputTokenCount);

        // completions: logprobs N gives parallel lists
        var completion = JsonNode.Parse(await (await s.Http.PostAsync("/v1/completions", Json(new { prompt = Prompt, max_tokens = 5, temperature = 0, logprobs = 2 }))).Content.ReadAsStringAsync())!;
        var lp = completion["choices"]![0]!["logprobs"]!;
        Assert.Equal(5, lp["tokens"]!.AsArray().Count);
        Assert.Equal(completion["choices"]![0]!["text"]!.GetValue<string>(), string.Concat(lp["tokens"]!.AsArray().Select(t => t!.GetValue<string>())));
        Assert.All(lp["top_logprobs"]!.AsArray(), t => Assert.InRange(t!.AsObject().Count, 1, 2));
        Assert.Equal(0, lp["text_offset"]![0]!.GetValue<int>());
    }

    [Fact]
    public async Task SeedPenaltiesAndBiasChangeTheAnswerAsOpenAiDefinesThem()
    {
        await using var s = new ServerFixture(stories.ModelDir, new Serving.ServeOptions { MaxConcurrent = 2 });
        async Task<(string Text, List<string> Tokens)> Ask(ChatCompletionOptions o)
        {
            o.MaxOutputTokenCount ??= 40;
            o.IncludeLogProbabilities = true;
            var a = (await Chat(s).CompleteChatAsync([ChatMessage.CreateUserMessage(Prompt)], o)).Value;
            return (a.Content[0].Text, a.ContentTokenLogProbabilities.Select(t => t.Token).ToList());
        }
        // seed: the same seed samples the same answer, another seed another
        var seeded = await Ask(new ChatCompletionOptions { Temperature = 1, Seed = 11 });
        Assert.Equal(seeded.Text, (await Ask(new ChatCompletionOptions { Temperature = 1, Seed = 11 })).Text);
        Assert.NotEqual(seeded.Text, (await Ask(new ChatCompletionOptions { Temperature = 1, Seed = 12 })).Text);

        // frequency and presence penalties: 150 greedy tokens of this model repeat its favourite tokens many times; penalized
        // decoding repeats them less (counted over the tokens the answer reports)
        async Task<List<string>> Completion(object extra)
        {
            var body = JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(new { prompt = Prompt, max_tokens = 150, temperature = 0, ignore_eos = true, logprobs = 0 }))!.AsObject();
            foreach (var (k, v) in JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(extra))!.AsObject()) body[k] = v?.DeepClone();
            var answer = JsonNode.Parse(await (await s.Http.PostAsync("/v1/completions", new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json"))).Content.ReadAsStringAsync())!;
            return [.. answer["choices"]![0]!["logprobs"]!["tokens"]!.AsArray().Select(t => t!.GetValue<string>())];
        }
        static int MostRepeated(List<string> t) => t.GroupBy(x => x).Max(g => g.Count());
        var plainTokens = await Completion(new { });
        var frequency = await Completion(new { frequency_penalty = 2 });
        var presence = await Completion(new { presence_penalty = 2 });
        Assert.True(MostRepeated(frequency) < MostRepeated(plainTokens), $"frequency: {MostRepeated(frequency)} vs {MostRepeated(plainTokens)}");
        Assert.True(presence.Distinct().Count() > plainTokens.Distinct().Count(), $"presence: {presence.Distinct().Count()} vs {plainTokens.Distinct().Count()} distinct");
        var plain = await Ask(new ChatCompletionOptions { Temperature = 0 });

        // logit_bias: -100 bans greedy's first token; +100 on a token makes greedy choose it every time
        var served = Served(s);
        var tokenizer = served.Model.Tokenizer;
        int first;
        using (var g = new Generator(served.Model))
        {
            g.AppendTokens([.. served.ChatTemplate.Tokenize(tokenizer, served.ChatTemplate.Render([new JsonObject { ["role"] = "user", ["content"] = Prompt }], addGenerationPrompt: true))]);
            first = Sampler.ArgMax(g.LastLogits);
        }
        Assert.Equal(tokenizer.PieceText(first), plain.Tokens[0]);
        var banned = new ChatCompletionOptions { Temperature = 0 };
        banned.LogitBiases[first] = -100;
        Assert.NotEqual(plain.Tokens[0], (await Ask(banned)).Tokens[0]);
        int forced = tokenizer.Encode(" cat", addBos: false)[^1];
        var forcing = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 6 };
        forcing.LogitBiases[forced] = 100;
        Assert.All((await Ask(forcing)).Tokens, t => Assert.Equal(tokenizer.PieceText(forced), t));
    }

    [Fact]
    public async Task WhatSioDoesNotImplementIsRefusedByName()
    {
        await using var s = new ServerFixture(stories.ModelDir);
        async Task<(HttpStatusCode Status, JsonNode Error)> Post(string route, object body)
        {
            var r = await s.Http.PostAsync(route, Json(body));
            return (r.StatusCode, JsonNode.Parse(await r.Content.ReadAsStringAsync())!["error"]!);
        }
        var unknown = await Post("/v1/chat/completions", new { messages = new[] { new { role = "user", content = "hi" } }, modalities = new[] { "audio" } });
        Assert.Equal((HttpStatusCode.BadRequest, "modalities"), (unknown.Status, unknown.Error["param"]!.GetValue<string>()));
        // a schema keyword sio cannot enforce is refused with its path, not ignored
        var json = await Post("/v1/chat/completions", new { messages = new[] { new { role = "user", content = "hi" } }, response_format = new { type = "json_schema", json_schema = new { name = "x", schema = new { type = "object", properties = new { code = new { type = "string", pattern = "^[A-Z]+$" } } } } } });
        Assert.Equal((HttpStatusCode.BadRequest, "response_format"), (json.Status, json.Error["param"]!.GetValue<string>()));
        Assert.Contains("schema.properties.code: sio does not enforce the schema keyword 'pattern'", json.Error["message"]!.GetValue<string>());
        var forced = await Post("/v1/chat/completions", new { messages = new[] { new { role = "user", content = "hi" } }, tool_choice = "required" });
        Assert.Equal(("tool_choice", "tool_choice needs tools"), (forced.Error["param"]!.GetValue<string>(), forced.Error["message"]!.GetValue<string>()));
        var echo = await Post("/v1/completions", new { prompt = "hi", echo = true });
        Assert.Equal("echo", echo.Error["param"]!.GetValue<string>());
        var chatOnly = await Post("/v1/completions", new { prompt = "hi", messages = Array.Empty<object>() });
        Assert.Equal("messages", chatOnly.Error["param"]!.GetValue<string>());
        var badBias = await Post("/v1/completions", new { prompt = "hi", logit_bias = new Dictionary<string, int> { ["99999"] = 5 } });
        Assert.Equal("logit_bias", badBias.Error["param"]!.GetValue<string>());
        var badPenalty = await Post("/v1/completions", new { prompt = "hi", presence_penalty = 3 });
        Assert.Equal("presence_penalty", badPenalty.Error["param"]!.GetValue<string>());

        // a model that is not the one served: 404 model_not_found, from the client's side too
        var wrong = await Assert.ThrowsAsync<ClientResultException>(() => Chat(s, "gpt-4o").CompleteChatAsync([ChatMessage.CreateUserMessage("hi")]));
        Assert.Equal(404, wrong.Status);
        Assert.Contains("model_not_found", wrong.Message);
        var models = new OpenAIClient(new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(s.BaseUri, "/v1") }).GetOpenAIModelClient();
        var id = (await models.GetModelsAsync()).Value.Single().Id;
        Assert.Equal(id, (await models.GetModelAsync(id)).Value.Id);
        Assert.Equal(404, (await Assert.ThrowsAsync<ClientResultException>(() => models.GetModelAsync("st"))).Status);
        // an unknown route answers in the same error shape
        var none = await s.Http.GetAsync("/v1/embeddings");
        Assert.Equal(HttpStatusCode.NotFound, none.StatusCode);
        Assert.NotNull(JsonNode.Parse(await none.Content.ReadAsStringAsync())!["error"]!["message"]);
    }

    /// <summary>response_format json_object: every answer is one JSON object, whatever the model would have said, at any
    /// temperature and seed and even when max_tokens is short (the constraint closes the object in time).</summary>
    [Fact]
    public async Task JsonModeAlwaysAnswersOneObject()
    {
        await using var s = new ServerFixture(stories.ModelDir, new Serving.ServeOptions { MaxConcurrent = 3 });
        await AssertEveryAnswerIsAnObject(s, [6, 20, 60]);
    }

    /// <summary>The same on a byte-level BPE vocabulary of 151,669 tokens (Qwen3's real tokenizer over random weights: the
    /// answers mean nothing, but every one must parse).</summary>
    [Fact]
    public async Task JsonModeHoldsOnAByteLevelVocabulary()
    {
        var dir = Path.Combine(TestPaths.TempDir("json-qwen"), "model");
        var config = new Models.DecoderConfig { Dim = 32, HiddenDim = 64, Layers = 1, Heads = 2, KvHeads = 1, VocabSize = 151936, ContextLength = 256 };
        Models.ModelImporter.Import(new Models.ImportRequest { Synthetic = config, Tokenizer = Path.Combine(NpmReference.ModelFiles("qwen3"), "tokenizer.json"), Seed = 5 }, dir);
        await using var s = new ServerFixture(dir, new Serving.ServeOptions { MaxConcurrent = 2 });
        await AssertEveryAnswerIsAnObject(s, [5, 40]);
    }

    static async Task AssertEveryAnswerIsAnObject(ServerFixture s, int[] budgets)
    {
        var asks = new List<Task<HttpResponseMessage>>();
        foreach (var max in budgets)
            foreach (var (temperature, seed) in new[] { (0f, 0), (1f, 1), (1f, 2), (1.5f, 3) })
                asks.Add(s.Http.PostAsync("/v1/chat/completions", Json(new
                {
                    messages = new[] { new { role = "user", content = "Tell me about a cat as JSON." } },
                    response_format = new { type = "json_object" }, max_tokens = max, temperature, seed,
                })));
        foreach (var ask in asks)
        {
            var answer = JsonNode.Parse(await (await ask).Content.ReadAsStringAsync())!;
            var text = answer["choices"]?[0]?["message"]?["content"]?.GetValue<string>() ?? throw new Xunit.Sdk.XunitException(answer.ToJsonString());
            using var doc = System.Text.Json.JsonDocument.Parse(text); // throws if it is not JSON
            Assert.Equal(System.Text.Json.JsonValueKind.Object, doc.RootElement.ValueKind);
        }
        // a budget too small for any object is refused up front
        var tiny = await s.Http.PostAsync("/v1/chat/completions", Json(new { messages = new[] { new { role = "user", content = "hi" } }, response_format = new { type = "json_object" }, max_tokens = 1 }));
        Assert.Equal(HttpStatusCode.BadRequest, tiny.StatusCode);
    }
}
