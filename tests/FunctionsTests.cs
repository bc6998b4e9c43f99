using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.DurableTask.Client;
using Microsoft.DurableTask.Testing;
using Microsoft.Extensions.DependencyInjection;
using Sio.Artifacts;
using Sio.Functions;
using Sio.Hosting;
using Sio.Pipeline;

namespace Sio.Tests;

/// <summary>
/// The optimizer Function App's catch-all HTTP trigger, called directly with real HTTP requests and a client of an
/// in-process task hub over Azurite blobs: the route table of `sio up`, served from one function.
/// </summary>
[Collection("azurite")]
[Trait("Category", "e2e")]
public class FunctionsTests(AzuriteFixture azurite)
{
    /// <summary>One request through the app's Http function; the answer's status and JSON body.</summary>
    internal static async Task<(int Status, JsonNode? Body, HttpContext Context)> Call(Func<HttpRequest, Task> function, string method, string path, string? json = null)
    {
        var ctx = new DefaultHttpContext();
        ctx.Request.Scheme = "https";
        ctx.Request.Host = new HostString("sio-optimizer.azurewebsites.net");
        ctx.Request.Method = method;
        ctx.Request.Path = path;
        if (json is not null) ctx.Request.Body = new MemoryStream(Encoding.UTF8.GetBytes(json));
        ctx.Response.Body = new MemoryStream();
        await function(ctx.Request);
        var text = Encoding.UTF8.GetString(((MemoryStream)ctx.Response.Body).ToArray());
        return (ctx.Response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text), ctx);
    }

    static Task NoMetrics(HttpContext c) { c.Response.StatusCode = 200; return Task.CompletedTask; }

    [Fact]
    public async Task TheHttpTriggerDrivesARunThroughTheSharedRoutes()
    {
        var options = new PipelineOptions { Store = BlobObjectStore.Connect(azurite.ConnectionString), WorkDir = TestPaths.TempDir("functions"), AllowLocalPaths = false };
        await using var host = await DurableTaskTestHost.StartAsync(PipelineTasks.Register, new DurableTaskTestHostOptions
        {
            ConfigureServices = s => s.AddSioPipeline(options),
        });
        var functions = new OptimizerFunctions(host.Services, OptimizerFunctions.Routes(host.Services, new ApiKeyCheck(null), NoMetrics));
        Task Http(HttpRequest r) => functions.Http(r, host.Client);
        var hub = Guid.NewGuid().ToString("N")[..8];
        await options.Store.UploadAsync(Containers.Uploads, $"{hub}/stories260K.zip", UpServer.StoriesZip());
        await options.Store.UploadAsync(Containers.Uploads, $"{hub}/data.jsonl", TestPaths.TinyStoriesDev);

        var bad = await Call(Http, "POST", "/api/optimizations", "{\"model\": \"uploads/x.zip\", \"dataset\": \"uploads/d.jsonl\", \"recipe\": \"awq-int4,awq-int4\"}");
        Assert.Equal(400, bad.Status);
        Assert.Equal("application/problem+json", bad.Context.Response.ContentType?.Split(';')[0]);
        Assert.Contains("repeats", bad.Body!["errors"]!["recipe"]![0]!.GetValue<string>());

        // the routes the app once lacked: uploads, models, validate, deployments, instances
        var uploads = await Call(Http, "GET", "/api/uploads");
        Assert.Equal(200, uploads.Status);
        Assert.Contains(uploads.Body!["uploads"]!.AsArray(), u => u!["name"]!.GetValue<string>() == $"{hub}/stories260K.zip");
        Assert.Equal(200, (await Call(Http, "GET", "/api/models")).Status);
        Assert.Equal(200, (await Call(Http, "GET", "/api/deployments")).Status);
        Assert.Equal(200, (await Call(Http, "GET", "/api/instances")).Status);
        var valid = await Call(Http, "POST", "/api/optimizations/validate", $"{{\"model\": \"uploads/{hub}/stories260K.zip\", \"dataset\": \"uploads/{hub}/data.jsonl\", \"recipe\": \"rtn-int4\"}}");
        Assert.Equal(200, valid.Status);
        Assert.Equal(501, (await Call(Http, "POST", "/v1/completions", "{\"prompt\": \"x\"}")).Status); // this app serves no model
        Assert.Equal(404, (await Call(Http, "GET", "/api/nothing")).Status);
        Assert.Equal(405, (await Call(Http, "PUT", "/api/optimizations")).Status);

        var started = await Call(Http, "POST", "/api/optimizations", $"{{\"model\": \"uploads/{hub}/stories260K.zip\", \"dataset\": \"uploads/{hub}/data.jsonl\", \"recipe\": \"rtn-int4,speculative:ngram\", " +
            "\"gates\": {\"maxPerplexityIncreasePercent\": 50, \"minSpeedup\": 0.05}, \"benchmark\": {\"concurrency\": [1], \"requests\": 3, \"maxNewTokens\": 16}}");
        Assert.Equal(202, started.Status);
        var id = started.Body!["id"]!.GetValue<string>();
        Assert.Equal($"https://sio-optimizer.azurewebsites.net/api/optimizations/{id}", started.Context.Response.Headers.Location.ToString());
        // Durable's HTTP conventions: 202 + Location + Retry-After while the run is going, 200 once it has ended
        var running = await Call(Http, "GET", $"/api/optimizations/{id}");
        Assert.Equal(202, running.Status);
        Assert.Equal(started.Context.Response.Headers.Location.ToString(), running.Context.Response.Headers.Location.ToString());
        Assert.Equal("5", running.Context.Response.Headers.RetryAfter.ToString());
        Assert.Contains(running.Body!["runtimeStatus"]!.GetValue<string>(), new[] { "Pending", "Running" });
        var done = await host.Client.WaitForInstanceCompletionAsync(id, getInputsAndOutputs: true, new CancellationTokenSource(TimeSpan.FromMinutes(4)).Token);
        Assert.True(done.RuntimeStatus == OrchestrationRuntimeStatus.Completed, done.FailureDetails?.ErrorMessage);

        var status = await Call(Http, "GET", $"/api/optimizations/{id}");
        Assert.Equal(200, status.Status);
        Assert.Equal("rtn-int4+speculative:ngram", status.Body!["output"]!["chosen"]!.GetValue<string>());
        var report = await Call(Http, "GET", $"/api/optimizations/{id}/report");
        Assert.Equal(3, report.Body!["variants"]!.AsArray().Count); // baseline, rtn-int4, rtn-int4+speculative:ngram
        Assert.Equal(404, (await Call(Http, "GET", "/api/optimizations/opt-none")).Status);
        Assert.Equal(409, (await Call(Http, "DELETE", $"/api/optimizations/{id}")).Status);
        var current = DeploymentManifest.Parse(await options.Store.GetTextAsync(Containers.Deployments, DeploymentManifest.Current))!;
        Assert.Equal(id, current.Id);
        Assert.Equal("ngram", current.Drafter);

        Assert.True(ArtifactRepository.IsModelUpload("team/stories260K.zip"));
        Assert.False(ArtifactRepository.IsModelUpload("team/tok512.bin"));
        Assert.False(ArtifactRepository.IsModelUpload("data.jsonl"));
    }

    [Fact]
    public async Task TheAppRefusesRequestsWithoutItsKey()
    {
        var services = new ServiceCollection().AddSioPipeline(new PipelineOptions { Store = BlobObjectStore.Connect(azurite.ConnectionString), WorkDir = TestPaths.TempDir("functions-key") }).BuildServiceProvider();
        var functions = new OptimizerFunctions(services, OptimizerFunctions.Routes(services, new ApiKeyCheck("s3cret"), NoMetrics));
        Task Http(HttpRequest r) => functions.Http(r, null!);
        var refused = await Call(Http, "GET", "/api/optimizations");
        Assert.Equal(401, refused.Status);
        Assert.Equal("authentication_error", refused.Body!["error"]!["type"]!.GetValue<string>());
        Assert.Equal(200, (await Call(Http, "GET", "/healthz")).Status); // liveness is public
    }
}

/// <summary>Activities retry transient faults with backoff and fail bad input at once: a store that fails its first writes.</summary>
[Trait("Category", "e2e")]
public class RetryTests
{
    /// <summary>A real folder store whose first <paramref name="failures"/> uploads throw an IOException, as a flaky network would.</summary>
    sealed class FlakyStore(IObjectStore inner, int failures) : IObjectStore
    {
        int _left = failures;
        public int Failed;
        public string Location => inner.Location;
        public Task UploadAsync(string c, string n, string f, IReadOnlyDictionary<string, string>? m = null, CancellationToken ct = default)
        {
            if (Interlocked.Decrement(ref _left) >= 0) { Interlocked.Increment(ref Failed); throw new IOException("connection reset by peer (injected)"); }
            return inner.UploadAsync(c, n, f, m, ct);
        }
        public Task PutTextAsync(string c, string n, string t, CancellationToken ct = default) => inner.PutTextAsync(c, n, t, ct);
        public Task<string?> GetTextAsync(string c, string n, CancellationToken ct = default) => inner.GetTextAsync(c, n, ct);
        public int MissingLookups;
        public Task<bool> DownloadAsync(string c, string n, string f, CancellationToken ct = default)
        {
            if (n.Contains("missing")) Interlocked.Increment(ref MissingLookups);
            return inner.DownloadAsync(c, n, f, ct);
        }
        public Task<bool> ExistsAsync(string c, string n, CancellationToken ct = default) => inner.ExistsAsync(c, n, ct);
        public Task<IReadOnlyList<StoredObject>> ListAsync(string c, string p = "", CancellationToken ct = default) => inner.ListAsync(c, p, ct);
        public Task DeleteAsync(string c, string n, CancellationToken ct = default) => inner.DeleteAsync(c, n, ct);
    }

    [Fact]
    public async Task TransientFaultsAreRetriedAndBadInputIsNot()
    {
        var root = TestPaths.TempDir("retry");
        var store = new FlakyStore(new FolderObjectStore(Path.Combine(root, "store")), failures: 2);
        var options = new PipelineOptions { Store = store, WorkDir = Path.Combine(root, "work"), AllowLocalPaths = true };
        await using var host = await DurableTaskTestHost.StartAsync(PipelineTasks.Register, new DurableTaskTestHostOptions
        {
            ConfigureServices = s => s.AddSioPipeline(options),
        });
        var request = new OptimizationRequest
        {
            Model = TestPaths.Stories260K, Dataset = TestPaths.TinyStoriesDev, Recipe = "rtn-int4", Deploy = false,
            Gates = new QualityGates { MaxPerplexityIncreasePercent = 50, MinSpeedup = 0.05 },
            Benchmark = new BenchmarkSettings { Concurrency = [1], Requests = 2, MaxNewTokens = 8 },
        };
        var id = await host.Client.ScheduleNewOrchestrationInstanceAsync(nameof(OptimizeModel), request);
        var done = await host.Client.WaitForInstanceCompletionAsync(id, getInputsAndOutputs: true, new CancellationTokenSource(TimeSpan.FromMinutes(3)).Token);
        Assert.True(done.RuntimeStatus == OrchestrationRuntimeStatus.Completed, done.FailureDetails?.ErrorMessage);
        Assert.Equal(2, store.Failed); // the validate step's dataset upload failed twice, then went through

        // Bad input fails on the first attempt, naming the step: no retries for a SioException.
        var bad = await host.Client.ScheduleNewOrchestrationInstanceAsync(nameof(OptimizeModel), request with { Model = "uploads/missing.bin" });
        var failed = await host.Client.WaitForInstanceCompletionAsync(bad, getInputsAndOutputs: true, new CancellationTokenSource(TimeSpan.FromMinutes(1)).Token);
        Assert.Equal(OrchestrationRuntimeStatus.Failed, failed.RuntimeStatus);
        Assert.StartsWith("import failed:", failed.FailureDetails!.ErrorMessage);
        Assert.Contains("uploads/missing.bin is not in the uploads container", failed.FailureDetails.ErrorMessage);
        Assert.Equal(1, store.MissingLookups); // one attempt
        Directory.Delete(root, true);
    }
}

/// <summary>The inference Function App's classes: the deployment event loads what deployments/current.json names, and the completion function answers with the shared handler.</summary>
[Trait("Category", "e2e")]
public class InferenceFunctionsTests
{
    [Fact]
    public async Task TheDeploymentEventLoadsTheModelAndCompletionsAnswer()
    {
        var root = TestPaths.TempDir("inference");
        var artifacts = new ArtifactRepository(new PipelineOptions { Store = new FolderObjectStore(Path.Combine(root, "store")), WorkDir = Path.Combine(root, "work"), AllowLocalPaths = true });
        using var deployments = new Serving.Deployments();
        var live = new LiveDeployment(artifacts.Store, new DeploymentLoader(deployments, new Serving.ServeOptions { MaxConcurrent = 2 }, new Generation.ModelOptions(), artifacts));
        var functions = new InferenceFunctions(live, InferenceFunctions.Routes(deployments, new ApiKeyCheck(null), c => Task.CompletedTask));
        Task Http(HttpRequest r) => functions.Http(r);

        Assert.Equal(503, (await FunctionsTests.Call(Http, "GET", "/readyz")).Status);
        Assert.Equal(200, (await FunctionsTests.Call(Http, "GET", "/healthz")).Status);
        var model = await new ImportModel(artifacts).RunAsync(new ImportInput(TestPaths.Stories260K, null));
        var manifest = new DeploymentManifest("run-1", "run-1", "baseline+speculative:ngram", model.Key, $"artifacts/models/{model.Key}", "ngram", "reports/run-1/report.json", 1, 0, DateTime.UtcNow);
        await artifacts.Store.PutTextAsync(Containers.Deployments, DeploymentManifest.Current, manifest.ToJson());
        await functions.OnDeployment("{\"eventType\": \"Microsoft.Storage.BlobCreated\", \"subject\": \"/blobServices/default/containers/deployments/blobs/current.json\"}");
        Assert.NotNull(deployments.Current);
        Assert.Equal("ngram", deployments.Current!.Engine.Options.Speculative.Drafter);

        var answer = await FunctionsTests.Call(Http, "POST", "/v1/completions", "{\"prompt\": \"Once upon a time\", \"max_tokens\": 20, \"temperature\": 0}");
        Assert.Equal(200, answer.Status);
        var expected = Generation.TextGeneration.Generate(deployments.Current.Model, deployments.Current.Model.Tokenizer.Encode("Once upon a time"), new Generation.GenerationOptions { MaxTokens = 20 }).Text;
        Assert.Equal(expected, answer.Body!["choices"]![0]!["text"]!.GetValue<string>());
        Assert.Equal(200, (await FunctionsTests.Call(Http, "GET", "/readyz")).Status);
        Assert.Equal(deployments.Current.Id, (await FunctionsTests.Call(Http, "GET", "/v1/models")).Body!["data"]![0]!["id"]!.GetValue<string>());
        Assert.Equal(501, (await FunctionsTests.Call(Http, "POST", "/api/optimizations", "{}")).Status); // this app runs no pipeline
        deployments.Dispose();
        Directory.Delete(root, true);
    }
}

/// <summary>
/// The inference app as an OpenAI SDK reaches it: its catch-all function behind a real HTTP listener on 127.0.0.1
/// (standing in for the Functions host, which cannot run here), called by the official OpenAI .NET client at /v1 with a
/// bearer key, as on Azure.
/// </summary>
[Trait("Category", "e2e")]
[Collection("stories260K")]
public class InferenceAppOpenAiTests(Stories260KFixture stories)
{
    [Fact]
    public async Task TheOpenAiClientWorksAgainstTheAppWithABearerKey()
    {
        using var deployments = new Serving.Deployments(Serving.Deployment.Load(stories.ModelDir, new Serving.ServeOptions(), new Generation.ModelOptions()));
        var functions = new InferenceFunctions(null!, InferenceFunctions.Routes(deployments, new ApiKeyCheck("app-k3y"), c => Task.CompletedTask));
        var builder = Microsoft.AspNetCore.Builder.WebApplication.CreateSlimBuilder();
        builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0));
        await using var app = builder.Build();
        app.Run(ctx => functions.Http(ctx.Request)); // every request to the one Http function, as the Functions host routes "{*path}"
        await app.StartAsync();
        var address = new Uri(app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()!.Addresses.First());

        var options = new OpenAI.OpenAIClientOptions { Endpoint = new Uri(address, "/v1") };
        var chat = new OpenAI.OpenAIClient(new System.ClientModel.ApiKeyCredential("app-k3y"), options).GetChatClient(deployments.Current!.Id);
        var answer = await chat.CompleteChatAsync([OpenAI.Chat.ChatMessage.CreateUserMessage("Once upon a time")], new OpenAI.Chat.ChatCompletionOptions { MaxOutputTokenCount = 12, Temperature = 0 });
        Assert.Equal(OpenAI.Chat.ChatFinishReason.Length, answer.Value.FinishReason);
        Assert.False(string.IsNullOrEmpty(answer.Value.Content[0].Text));
        var models = await new OpenAI.OpenAIClient(new System.ClientModel.ApiKeyCredential("app-k3y"), options).GetOpenAIModelClient().GetModelsAsync();
        Assert.Equal(deployments.Current.Id, models.Value.Single().Id);

        var wrong = new OpenAI.OpenAIClient(new System.ClientModel.ApiKeyCredential("wrong"), options).GetChatClient(deployments.Current.Id);
        var refused = await Assert.ThrowsAsync<System.ClientModel.ClientResultException>(() => wrong.CompleteChatAsync([OpenAI.Chat.ChatMessage.CreateUserMessage("hi")]));
        Assert.Equal(401, refused.Status);
        using var http = new HttpClient { BaseAddress = address };
        Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync("healthz")).StatusCode); // public, for the platform's probe
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, (await http.GetAsync("metrics")).StatusCode);
        await app.StopAsync();
    }
}
