using System.ClientModel;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using Microsoft.Extensions.AI;
using OpenAI;
using OpenAI.Chat;
using OaiChatMessage = OpenAI.Chat.ChatMessage;

#pragma warning disable OPENAI001 // ChatCompletionOptions.Seed is marked experimental by the client library

namespace Sio.Tests;

/// <summary>A random-weight model with Qwen3's real byte-level tokenizer and chat template (tools included), served once for the agent tests.</summary>
public sealed class QwenShapeFixture : IDisposable
{
    public string ModelDir { get; }

    public QwenShapeFixture()
    {
        ModelDir = Path.Combine(TestPaths.TempDir("agent-qwen"), "model");
        var config = new Models.DecoderConfig { Dim = 32, HiddenDim = 64, Layers = 1, Heads = 2, KvHeads = 1, VocabSize = 151936, ContextLength = 2048 };
        Models.ModelImporter.Import(new Models.ImportRequest { Synthetic = config, Tokenizer = Path.Combine(NpmReference.ModelFiles("qwen3"), "tokenizer.json"), Seed = 11 }, ModelDir);
    }

    public void Dispose() { }
}

/// <summary>
/// The OpenAI API as agents use it, through the official OpenAI .NET client and Microsoft.Extensions.AI against a real
/// `sio serve`: structured output under json_schema (every answer validated by JsonSchema.Net), tool calls forced
/// by name or "required" and read back into tool_calls (plain and streamed), the whole tool loop through
/// UseFunctionInvocation(), and n choices. The model's weights are random (the answers mean nothing), which is the
/// point: the guarantees must hold whatever the model would have said.
/// </summary>
[Trait("Category", "e2e")]
[Collection("stories260K")]
public class AgentApiTests(Stories260KFixture stories, QwenShapeFixture qwen) : IClassFixture<QwenShapeFixture>
{
    const string Weather = """{"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}, "days": {"type": "integer"}}, "required": ["city", "unit"], "additionalProperties": false}""";

    static Serving.Deployment Served(ServerFixture s) => ((Serving.Deployments)s.App.Services.GetService(typeof(Serving.Deployments))!).Current!;

    static ChatClient Chat(ServerFixture s) =>
        new OpenAIClient(new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(s.BaseUri, "/v1") }).GetChatClient(Served(s).Id);

    static StringContent Json(object o) => new(JsonSerializer.Serialize(o), System.Text.Encoding.UTF8, "application/json");

    [Fact]
    public async Task JsonSchemaAnswersAlwaysValidate()
    {
        await using var s = new ServerFixture(stories.ModelDir, new Serving.ServeOptions { MaxConcurrent = 4 });
        foreach (var (name, text) in new[] { ("person", StructuredOutputTests.Person), ("tree", StructuredOutputTests.Tree), ("mixed", StructuredOutputTests.Mixed) })
        {
            var schema = JsonSchema.FromText(text, baseUri: new Uri($"https://sio.test/e2e/{name}"));
            var format = OpenAI.Chat.ChatResponseFormat.CreateJsonSchemaFormat(name, BinaryData.FromString(text), jsonSchemaIsStrict: true);
            var asks = new[] { (0f, 0, 60), (1f, 1, 60), (1.5f, 2, 200), (1f, 3, 120) }.Select(x => Chat(s).CompleteChatAsync(
                [OaiChatMessage.CreateUserMessage($"Describe a {name} as JSON.")],
                new ChatCompletionOptions { ResponseFormat = format, Temperature = x.Item1, Seed = x.Item2, MaxOutputTokenCount = x.Item3 })).ToList();
            foreach (var ask in asks)
            {
                var text2 = (await ask).Value.Content[0].Text;
                using var doc = JsonDocument.Parse(text2);
                Assert.True(schema.Evaluate(doc.RootElement).IsValid, $"{name}: {text2}");
            }
        }
    }

    [Fact]
    public async Task AForcedToolCallComesBackAsToolCallsPlainAndStreamed()
    {
        await using var s = new ServerFixture(qwen.ModelDir);
        var tool = ChatTool.CreateFunctionTool("get_weather", "The weather in a city", BinaryData.FromString(Weather));
        var other = ChatTool.CreateFunctionTool("get_time", "The time in a zone", BinaryData.FromString("""{"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}"""));
        var schema = JsonSchema.FromText(Weather, baseUri: new Uri("https://sio.test/e2e/weather"));
        var options = new ChatCompletionOptions { Tools = { tool, other }, ToolChoice = ChatToolChoice.CreateFunctionChoice("get_weather"), MaxOutputTokenCount = 160, Temperature = 1, Seed = 4 };
        var plain = (await Chat(s).CompleteChatAsync([OaiChatMessage.CreateUserMessage("Weather in Paris?")], options)).Value;
        Assert.Equal(OpenAI.Chat.ChatFinishReason.ToolCalls, plain.FinishReason);
        var call = Assert.Single(plain.ToolCalls);
        Assert.Equal("get_weather", call.FunctionName);
        using (var args = JsonDocument.Parse(call.FunctionArguments.ToString()))
            Assert.True(schema.Evaluate(args.RootElement).IsValid, call.FunctionArguments.ToString());

        // streamed: the same call (same seed) arrives as tool-call deltas, and no text before it
        string? name = null, id = null;
        var arguments = new System.Text.StringBuilder();
        OpenAI.Chat.ChatFinishReason? finish = null;
        await foreach (var update in Chat(s).CompleteChatStreamingAsync([OaiChatMessage.CreateUserMessage("Weather in Paris?")], options))
        {
            Assert.All(update.ContentUpdate, part => Assert.True(string.IsNullOrEmpty(part.Text), part.Text));
            foreach (var t in update.ToolCallUpdates)
            {
                name ??= t.FunctionName;
                id ??= t.ToolCallId;
                arguments.Append(t.FunctionArgumentsUpdate?.ToString());
            }
            finish ??= update.FinishReason;
        }
        Assert.Equal(("get_weather", call.FunctionArguments.ToString()), (name, arguments.ToString()));
        Assert.NotNull(id);
        Assert.Equal(OpenAI.Chat.ChatFinishReason.ToolCalls, finish);

        // "required": one of the offered functions, under its own schema; a named function that was not offered is a 400
        var required = (await Chat(s).CompleteChatAsync([OaiChatMessage.CreateUserMessage("Time?")],
            new ChatCompletionOptions { Tools = { tool, other }, ToolChoice = ChatToolChoice.CreateRequiredChoice(), MaxOutputTokenCount = 160, Seed = 1, Temperature = 1 })).Value;
        Assert.Contains(Assert.Single(required.ToolCalls).FunctionName, new[] { "get_weather", "get_time" });
        var unknown = await s.Http.PostAsync("/v1/chat/completions", Json(new
        {
            messages = new[] { new { role = "user", content = "hi" } },
            tools = new[] { new { type = "function", function = new { name = "get_weather", parameters = JsonNode.Parse(Weather) } } },
            tool_choice = new { type = "function", function = new { name = "rm_rf" } },
        }));
        Assert.Equal(HttpStatusCode.BadRequest, unknown.StatusCode);
        Assert.Contains("'rm_rf', which is not one of the tools", await unknown.Content.ReadAsStringAsync());
    }

    /// <summary>The agent loop as Microsoft.Extensions.AI runs it: the model must call the tool, the function runs, its
    /// result goes back as a tool message (rendered by the model's own template), and the model answers.</summary>
    [Fact]
    public async Task UseFunctionInvocationCompletesTheToolLoop()
    {
        await using var s = new ServerFixture(qwen.ModelDir);
        var calls = new List<(string City, string Unit)>();
        var getWeather = AIFunctionFactory.Create((string city, string unit) =>
        {
            calls.Add((city, unit));
            return $"18 degrees {unit} and sunny in {city}";
        }, "get_weather", "The weather in a city; unit is celsius or fahrenheit");
        using IChatClient client = Chat(s).AsIChatClient().AsBuilder().UseFunctionInvocation().Build();
        ChatResponse response;
        try
        {
            response = await client.GetResponseAsync("What is the weather in Paris?", new ChatOptions
            {
                Tools = [getWeather], ToolMode = ChatToolMode.RequireSpecific("get_weather"), MaxOutputTokens = 160, Temperature = 1, Seed = 3,
            });
        }
        catch (ClientResultException e) { throw new Xunit.Sdk.XunitException(e.GetRawResponse()?.Content.ToString()); }
        Assert.Single(calls); // the required call ran once; then the model answered
        Assert.Contains(response.Messages, m => m.Contents.OfType<FunctionCallContent>().Any(c => c.Name == "get_weather"));
        Assert.Contains(response.Messages, m => m.Contents.OfType<FunctionResultContent>().Any(r => r.Result!.ToString()!.Contains("sunny")));
        Assert.Equal(Microsoft.Extensions.AI.ChatRole.Assistant, response.Messages[^1].Role);
        Assert.NotNull(response.Usage?.InputTokenCount);
    }

    /// <summary>Speculation under a JSON schema and under penalties: drafts are checked against the same constraint and the
    /// same penalized logits, so the answers are exactly those of a server that does not speculate — and drafts were played.</summary>
    [Fact]
    public async Task DraftsAreCheckedAgainstTheConstraintAndThePenalties()
    {
        await using var plain = new ServerFixture(stories.ModelDir, new Serving.ServeOptions { MaxConcurrent = 2 });
        await using var fast = new ServerFixture(stories.ModelDir, new Serving.ServeOptions
        {
            MaxConcurrent = 2, Speculative = new Speculative.SpeculativeOptions { Drafter = "ngram", DraftTokens = 4 },
        });
        var bodies = new object[]
        {
            new { messages = new[] { new { role = "user", content = "A tree" } }, max_tokens = 200, temperature = 0,
                response_format = new { type = "json_schema", json_schema = new { name = "tree", schema = JsonNode.Parse(StructuredOutputTests.Tree) } } },
            new { messages = new[] { new { role = "user", content = "A person" } }, max_tokens = 120, temperature = 0,
                response_format = new { type = "json_schema", json_schema = new { name = "person", schema = JsonNode.Parse(StructuredOutputTests.Person) } } },
            new { messages = new[] { new { role = "user", content = "Once upon a time" } }, max_tokens = 120, temperature = 0, frequency_penalty = 0.3, presence_penalty = 0.2 },
        };
        long proposed = 0;
        foreach (var body in bodies)
        {
            var expected = JsonNode.Parse(await (await plain.Http.PostAsync("/v1/chat/completions", Json(body))).Content.ReadAsStringAsync())!;
            var answer = JsonNode.Parse(await (await fast.Http.PostAsync("/v1/chat/completions", Json(body))).Content.ReadAsStringAsync())!;
            Assert.Equal(expected["choices"]![0]!["message"]!["content"]!.GetValue<string>(), answer["choices"]![0]!["message"]!["content"]!.GetValue<string>());
            proposed += answer["sio"]?["speculative"]?["proposed"]?.GetValue<long>() ?? 0;
        }
        Assert.True(proposed > 0, "the speculative server should have drafted");
    }

    /// <summary>n choices: each its own sample (seed + i), reproducible, the first equal to the n = 1 answer; streamed by index.</summary>
    [Fact]
    public async Task NChoicesAreReproducibleSamples()
    {
        await using var s = new ServerFixture(stories.ModelDir, new Serving.ServeOptions { MaxConcurrent = 4 });
        async Task<JsonNode> Ask(int n, bool stream = false)
        {
            var r = await s.Http.PostAsync("/v1/completions", Json(new { prompt = "Once upon a time", max_tokens = 24, temperature = 1, seed = 7, n, stream }));
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            var body = await r.Content.ReadAsStringAsync();
            if (!stream) return JsonNode.Parse(body)!;
            var texts = new string[n];
            foreach (var line in body.Split('\n').Where(l => l.StartsWith("data: {", StringComparison.Ordinal)))
            {
                var choice = JsonNode.Parse(line[6..])!["choices"]!.AsArray().SingleOrDefault();
                if (choice is null) continue;
                texts[choice["index"]!.GetValue<int>()] += choice["text"]!.GetValue<string>();
            }
            return new JsonObject { ["choices"] = new JsonArray([.. texts.Select((t, i) => (JsonNode)new JsonObject { ["index"] = i, ["text"] = t })]) };
        }
        string[] Texts(JsonNode a) => [.. a["choices"]!.AsArray().Select(c => c!["text"]!.GetValue<string>())];
        var three = await Ask(3);
        Assert.Equal([0, 1, 2], three["choices"]!.AsArray().Select(c => c!["index"]!.GetValue<int>()));
        Assert.True(Texts(three).Distinct().Count() > 1, string.Join(" | ", Texts(three)));
        Assert.Equal(Texts(three), Texts(await Ask(3)));
        Assert.Equal(Texts(three)[0], Texts(await Ask(1))[0]);
        Assert.Equal(Texts(three), Texts(await Ask(3, stream: true)));
        int one = (await Ask(1))["usage"]!["completion_tokens"]!.GetValue<int>();
        Assert.InRange(three["usage"]!["completion_tokens"]!.GetValue<int>(), one + 2, 3 * 24); // every choice's tokens are counted
    }
}

/// <summary>The in-process <see cref="Serving.SioChatClient"/>: the same batching engine, the same structured output and tool loop.</summary>
[Trait("Category", "e2e")]
[Collection("stories260K")]
public class SioChatClientTests(Stories260KFixture stories, QwenShapeFixture qwen) : IClassFixture<QwenShapeFixture>
{
    [Fact]
    public async Task ConcurrentCallsShareTheBatchingEngineAndMatchSoloAnswers()
    {
        using var model = Generation.Model.Load(stories.ModelDir);
        using IChatClient client = new Serving.SioChatClient(model, options: new Serving.ServeOptions { MaxConcurrent = 3 });
        string[] prompts = ["Once upon a time", "The little dog", "Lily and Tom"];
        var solo = prompts.Select(p => Generation.TextGeneration.Generate(model, model.Tokenizer.Encode(p + "\n\n"), new Generation.GenerationOptions { MaxTokens = 24 }).Text).ToList();
        var together = await Task.WhenAll(prompts.Select(p => client.GetResponseAsync(p, new ChatOptions { MaxOutputTokens = 24, Temperature = 0 })));
        Assert.Equal(solo, together.Select(r => r.Text));
        // a JSON schema as ResponseFormat: constrained, and valid
        var schema = JsonSchema.FromText(StructuredOutputTests.Person, baseUri: new Uri("https://sio.test/client/person"));
        var person = await client.GetResponseAsync("A person:", new ChatOptions
        {
            MaxOutputTokens = 120, Temperature = 1, Seed = 5,
            ResponseFormat = Microsoft.Extensions.AI.ChatResponseFormat.ForJsonSchema(JsonDocument.Parse(StructuredOutputTests.Person).RootElement, "person"),
        });
        using var doc = JsonDocument.Parse(person.Text);
        Assert.True(schema.Evaluate(doc.RootElement).IsValid, person.Text);
    }

    [Fact]
    public async Task TheToolLoopRunsInProcess()
    {
        using var model = Generation.Model.Load(qwen.ModelDir);
        int called = 0;
        var getTime = AIFunctionFactory.Create((string zone) => { called++; return $"12:00 in {zone}"; }, "get_time", "The time in a zone");
        using IChatClient client = new Serving.SioChatClient(model).AsBuilder().UseFunctionInvocation().Build();
        var response = await client.GetResponseAsync("What time is it in Tokyo?", new ChatOptions
        {
            Tools = [getTime], ToolMode = ChatToolMode.RequireAny, MaxOutputTokens = 120, Temperature = 1, Seed = 2,
        });
        Assert.Equal(1, called);
        Assert.Contains(response.Messages, m => m.Contents.OfType<FunctionResultContent>().Any(r => r.Result!.ToString()!.Contains("12:00")));
        Assert.Equal(ChatRole.Assistant, response.Messages[^1].Role);
    }
}
