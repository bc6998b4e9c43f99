using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Sio.Artifacts;
using Sio.Functions;
using Sio.Hosting;
using Sio.Pipeline;

namespace Sio.Tests;

/// <summary>
/// Every host serves the same HTTP surface: the endpoints `sio up` and `sio serve` map, and the routes both Function
/// Apps dispatch, are one set of (method, pattern); every route of it reaches its handler on the Functions' catch-all
/// trigger; and a request no route takes gets the same 404 or 405 answer everywhere.
/// </summary>
[Collection("stories260K")]
[Trait("Category", "e2e")]
public class RouteParityTests(Stories260KFixture stories)
{
    static SortedSet<string> Endpoints(WebApplication app) =>
    [
        .. app.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.Metadata.GetMetadata<Grpc.AspNetCore.Server.GrpcMethodMetadata>() is null) // sio up's sidecar listener
            .Where(e => !e.RoutePattern.RawText!.StartsWith("TaskHubSidecarService/")) // its unimplemented-method answer, gRPC only
            .Where(e => e.Metadata.GetMetadata<IEndpointNameMetadata>()?.EndpointName != RouteMapping.NoRoute)
            .Select(e => $"{e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods.Single() ?? "ANY"} /{e.RoutePattern.RawText!.TrimStart('/')}"),
    ];

    static SortedSet<string> Routes(RouteDispatcher d) => [.. d.Routes.Select(r => $"{r.Method} {r.Pattern}")];

    /// <summary>A concrete path for a pattern: each parameter filled with a sample value.</summary>
    static string Sample(string pattern) => pattern.Replace("{**name}", "team/data.jsonl").Replace("{id}", "opt-1");

    [Fact]
    public async Task EveryHostServesTheSameRoutes()
    {
        await using var up = new UpServer();
        await using var serve = new ServerFixture(stories.ModelDir);
        var services = new ServiceCollection().AddSioPipeline(new PipelineOptions { Store = new FolderObjectStore(Path.Combine(up.Root, "fx")), WorkDir = Path.Combine(up.Root, "fxw") }).BuildServiceProvider();
        var optimizer = OptimizerFunctions.Routes(services, new ApiKeyCheck(null), c => Task.CompletedTask);
        using var deployments = new Serving.Deployments();
        var inference = InferenceFunctions.Routes(deployments, new ApiKeyCheck(null), c => Task.CompletedTask);

        var table = Routes(optimizer);
        Assert.True(table.Count >= 22, $"the table has {table.Count} routes");
        Assert.Equal(table, Endpoints(up.App));
        Assert.Equal(table, Endpoints(serve.App));
        Assert.Equal(table, Routes(inference));

        // each app's one HTTP trigger takes every path (host.json: no route prefix) and every method of the table
        foreach (var trigger in new[] { typeof(OptimizerFunctions), typeof(InferenceFunctions) }.Select(t => t.GetMethod("Http")!.GetParameters()[0]
                     .GetCustomAttributes(typeof(Microsoft.Azure.Functions.Worker.HttpTriggerAttribute), false).Cast<Microsoft.Azure.Functions.Worker.HttpTriggerAttribute>().Single()))
        {
            Assert.Equal("{*path}", trigger.Route);
            Assert.All(optimizer.Routes, r => Assert.Contains(r.Method, trigger.Methods!, StringComparer.OrdinalIgnoreCase));
        }
        Assert.Equal("", JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "host.json")))!["extensions"]!["http"]!["routePrefix"]!.GetValue<string>());

        foreach (var route in optimizer.Routes)
        {
            var (matched, _, _) = optimizer.Match(route.Method, Sample(route.Pattern));
            Assert.True(matched == route, $"{route.Method} {Sample(route.Pattern)} reached {matched?.Name ?? "no route"}, not {route.Name}");
        }

        // no route: 404, and 405 where the path takes another method, in the same shape on every host
        foreach (var (method, path, status) in new[] { ("GET", "/api/nothing", 404), ("PUT", "/api/optimizations", 405), ("DELETE", "/v1/models", 405) })
        {
            var fn = await FunctionsTests.Call(r => inference.DispatchAsync(r.HttpContext), method, path);
            Assert.Equal(status, fn.Status);
            foreach (var http in new[] { up.Http, serve.Http })
            {
                var answer = await http.SendAsync(new HttpRequestMessage(new HttpMethod(method), path.TrimStart('/')));
                Assert.Equal((HttpStatusCode)status, answer.StatusCode);
                Assert.Equal(fn.Body!.ToJsonString(), JsonNode.Parse(await answer.Content.ReadAsStringAsync())!.ToJsonString());
            }
        }
    }
}
