using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Sio.Functions;
using Sio.Hosting;
using Sio.Pipeline;

var builder = FunctionsApplication.CreateBuilder(args);
builder.ConfigureFunctionsWebApplication();
builder.Services.AddSioPipeline(FunctionsStorage.PipelineOptions());
builder.Services.AddSioTelemetry("optimizer Function App");
builder.Services.AddSingleton(sp => OptimizerFunctions.Routes(sp, FunctionsStorage.KeyCheck(),
    PrometheusMetrics.Handler(() => sp)));
builder.Build().Run();
