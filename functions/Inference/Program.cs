using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Sio.Functions;
using Sio.Serving;

var builder = FunctionsApplication.CreateBuilder(args);
builder.ConfigureFunctionsWebApplication();
builder.Services.AddSingleton(new Deployments());
builder.Services.AddSingleton(sp => new LiveDeployment(new Sio.Pipeline.PipelineSteps(FunctionsStorage.PipelineOptions()), sp.GetRequiredService<Deployments>(),
    new ServeOptions { MaxConcurrent = int.TryParse(Environment.GetEnvironmentVariable("SIO_MAX_CONCURRENT"), out var c) ? c : 8 },
    new Sio.Generation.ModelOptions { Provider = Environment.GetEnvironmentVariable("SIO_PROVIDER") ?? "cpu" }));
var app = builder.Build();
await app.Services.GetRequiredService<LiveDeployment>().RefreshAsync(); // serve what is live from the start
app.Run();
