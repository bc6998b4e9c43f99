using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Sio.Functions;
using Sio.Serving;

var builder = FunctionsApplication.CreateBuilder(args);
builder.ConfigureFunctionsWebApplication();
builder.Services.AddSingleton(new Deployments());
builder.Services.AddSingleton(sp =>
{
    var steps = new Sio.Pipeline.PipelineSteps(FunctionsStorage.PipelineOptions());
    var loader = new Sio.Pipeline.DeploymentLoader(sp.GetRequiredService<Deployments>(),
        new ServeOptions { MaxConcurrent = int.TryParse(Environment.GetEnvironmentVariable("SIO_MAX_CONCURRENT"), out var c) ? c : 8 },
        new Sio.Generation.ModelOptions { Provider = Environment.GetEnvironmentVariable("SIO_PROVIDER") ?? "cpu" }) { Steps = steps };
    return new LiveDeployment(steps, loader);
});
var app = builder.Build();
await app.Services.GetRequiredService<LiveDeployment>().RefreshAsync(); // serve what is live from the start
app.Run();
