using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.DurableTask.Client;
using Microsoft.DurableTask.Testing;
using Microsoft.Extensions.DependencyInjection;
using Sio.Artifacts;
using Sio.Functions;
using Sio.Pipeline;

namespace Sio.Tests;

/// <summary>The optimizer Function App's classes, called directly with real HTTP requests and a client of an in-process task hub over Azurite blobs.</summary>
[Collection("azurite")]
public class FunctionsTests(AzuriteFixture azurite)
{
    static HttpRequest Post(string json)
    {
        var ctx = new DefaultHttpContext();
        ctx.Request.Scheme = "https";
        ctx.Request.Host = new HostString("sio-optimizer.azurewebsites.net");
        ctx.Request.Method = "POST";
        ctx.Request.Body = new MemoryStream(Encoding.UTF8.GetBytes(json));
        return ctx.Request;
    }

    static HttpRequest Get() => new DefaultHttpContext { Request = { Scheme = "https", Host = new HostString("sio-optimizer.azurewebsites.net") } }.Request;

    [Fact]
    public async Task TheHttpStarterAndStatusFunctionsDriveARun()
    {
        var options = new PipelineOptions { Store = BlobObjectStore.Connect(azurite.ConnectionString), WorkDir = TestPaths.TempDir("functions"), AllowLocalPaths = false };
        await using var host = await DurableTaskTestHost.StartAsync(PipelineTasks.Register, new DurableTaskTestHostOptions
        {
            ConfigureServices = s => { s.AddSingleton(options); s.AddSingleton<PipelineSteps>(); },
        });
        var functions = new OptimizerFunctions(host.Services.GetRequiredService<PipelineSteps>());
        var hub = Guid.NewGuid().ToString("N")[..8];
        await options.Store.UploadAsync(Containers.Uploads, $"{hub}/stories260K.zip", UpServer.StoriesZip());
        await options.Store.UploadAsync(Containers.Uploads, $"{hub}/data.jsonl", TestPaths.TinyStoriesDev);

        var bad = (ContentResult)await functions.Start(Post("{\"model\": \"uploads/x.zip\", \"dataset\": \"uploads/d.jsonl\", \"recipe\": \"awq-int4,awq-int4\"}"), host.Client);
        Assert.Equal(400, bad.StatusCode);
        Assert.Equal("application/problem+json", bad.ContentType);
        Assert.Contains("repeats", JsonNode.Parse(bad.Content!)!["errors"]!["recipe"]![0]!.GetValue<string>());

        var req = Post($"{{\"model\": \"uploads/{hub}/stories260K.zip\", \"dataset\": \"uploads/{hub}/data.jsonl\", \"recipe\": \"rtn-int4,speculative:ngram\", " +
            "\"gates\": {\"maxPerplexityIncreasePercent\": 50, \"minSpeedup\": 0.05}, \"benchmark\": {\"concurrency\": [1], \"requests\": 3, \"maxNewTokens\": 16}}");
        var started = (ContentResult)await functions.Start(req, host.Client);
        Assert.Equal(202, started.StatusCode);
        var id = JsonNode.Parse(started.Content!)!["id"]!.GetValue<string>();
        Assert.Equal($"https://sio-optimizer.azurewebsites.net/api/optimizations/{id}", req.HttpContext.Response.Headers.Location.ToString());
        var done = await host.Client.WaitForInstanceCompletionAsync(id, getInputsAndOutputs: true, new CancellationTokenSource(TimeSpan.FromMinutes(4)).Token);
        Assert.True(done.RuntimeStatus == OrchestrationRuntimeStatus.Completed, done.FailureDetails?.ErrorMessage);

        var status = (ContentResult)await functions.Get(Get(), host.Client, id);
        Assert.Equal(200, status.StatusCode);
        Assert.Equal("rtn-int4+speculative:ngram", JsonNode.Parse(status.Content!)!["output"]!["chosen"]!.GetValue<string>());
        var report = (ContentResult)await functions.Report(Get(), host.Client, id);
        Assert.Equal(3, JsonNode.Parse(report.Content!)!["variants"]!.AsArray().Count); // baseline, rtn-int4, rtn-int4+speculative:ngram
        Assert.Equal(404, ((ContentResult)await functions.Get(Get(), host.Client, "opt-none")).StatusCode);
        Assert.Equal(409, ((ContentResult)await functions.Cancel(Get(), host.Client, id)).StatusCode);
        var current = DeploymentManifest.Parse(await options.Store.GetTextAsync(Containers.Deployments, DeploymentManifest.Current))!;
        Assert.Equal(id, current.Id);
        Assert.Equal("ngram", current.Drafter);

        Assert.True(PipelineSteps.IsModelUpload("team/stories260K.zip"));
        Assert.False(PipelineSteps.IsModelUpload("team/tok512.bin"));
        Assert.False(PipelineSteps.IsModelUpload("data.jsonl"));
    }
}

/// <summary>Activities retry transient faults with backoff and fail bad input at once: a store that fails its first writes.</summary>
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
            ConfigureServices = s => { s.AddSingleton(options); s.AddSingleton<PipelineSteps>(); },
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
public class InferenceFunctionsTests
{
    [Fact]
    public async Task TheDeploymentEventLoadsTheModelAndCompletionsAnswer()
    {
        var root = TestPaths.TempDir("inference");
        var steps = new PipelineSteps(new PipelineOptions { Store = new FolderObjectStore(Path.Combine(root, "store")), WorkDir = Path.Combine(root, "work"), AllowLocalPaths = true });
        using var deployments = new Serving.Deployments();
        var live = new LiveDeployment(steps, new DeploymentLoader(deployments, new Serving.ServeOptions { MaxConcurrent = 2 }, new Generation.ModelOptions()) { Steps = steps });
        var functions = new InferenceFunctions(deployments, live);

        var ready = (ObjectResult)functions.Ready(new DefaultHttpContext().Request);
        Assert.Equal(503, ready.StatusCode);
        var model = await steps.ImportAsync(new ImportInput(TestPaths.Stories260K, null));
        var manifest = new DeploymentManifest("run-1", "run-1", "baseline+speculative:ngram", model.Key, $"artifacts/models/{model.Key}", "ngram", "reports/run-1/report.json", 1, 0, DateTime.UtcNow);
        await steps.Options.Store.PutTextAsync(Containers.Deployments, DeploymentManifest.Current, manifest.ToJson());
        await functions.OnDeployment(new MemoryStream());
        Assert.NotNull(deployments.Current);
        Assert.Equal("ngram", deployments.Current!.Engine.Options.Speculative.Drafter);

        var ctx = new DefaultHttpContext();
        ctx.Request.Method = "POST";
        ctx.Request.Body = new MemoryStream(Encoding.UTF8.GetBytes("{\"prompt\": \"Once upon a time\", \"max_tokens\": 20, \"temperature\": 0}"));
        ctx.Response.Body = new MemoryStream();
        Assert.IsType<EmptyResult>(await functions.Completions(ctx.Request));
        Assert.Equal(200, ctx.Response.StatusCode);
        var body = JsonNode.Parse(Encoding.UTF8.GetString(((MemoryStream)ctx.Response.Body).ToArray()))!;
        var expected = Generation.TextGeneration.Generate(deployments.Current.Model, deployments.Current.Model.Tokenizer.Encode("Once upon a time"), new Generation.GenerationOptions { MaxTokens = 20 }).Text;
        Assert.Equal(expected, body["choices"]![0]!["text"]!.GetValue<string>());
        Assert.Equal(200, ((JsonResult)functions.Ready(new DefaultHttpContext().Request)).StatusCode ?? 200);
        deployments.Dispose();
        Directory.Delete(root, true);
    }
}
