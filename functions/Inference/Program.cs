using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Sio.Functions;
using Sio.Hosting;
using Sio.Pipeline;
using Sio.Serving;

var builder = FunctionsApplication.CreateBuilder(args);
builder.ConfigureFunctionsWebApplication();
builder.Services.AddSingleton(new Deployments());
builder.Services.AddSioTelemetry("inference Function App");
builder.Services.AddSingleton(sp =>
{
    var store = FunctionsStorage.Store();
    var loader = new DeploymentLoader(sp.GetRequiredService<Deployments>(),
        new ServeOptions { MaxConcurrent = int.TryParse(Environment.GetEnvironmentVariable("SIO_MAX_CONCURRENT"), out var c) ? c : 8 },
        new Sio.Generation.ModelOptions { Provider = Environment.GetEnvironmentVariable("SIO_PROVIDER") ?? "cpu" },
        new ArtifactRepository(FunctionsStorage.PipelineOptions() with { Store = store }));
    return new LiveDeployment(store, loader);
});
builder.Services.AddSingleton(sp => InferenceFunctions.Routes(sp.GetRequiredService<Deployments>(), FunctionsStorage.KeyCheck(), PrometheusMetrics.Handler(() => sp)));
var app = builder.Build();
await app.Services.GetRequiredService<LiveDeployment>().RefreshAsync(); // serve what is live from the start
app.Run();
