using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Sio.Functions;

var builder = FunctionsApplication.CreateBuilder(args);
builder.ConfigureFunctionsWebApplication();
builder.Services.AddSingleton(FunctionsStorage.PipelineOptions());
builder.Services.AddSingleton<Sio.Pipeline.PipelineSteps>();
builder.Build().Run();
