using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using Sio.Serving;

namespace Sio.Functions;

/// <summary>The inference app's triggers: the same OpenAI-compatible handlers `sio serve` and `sio up` map, and the deployment event.</summary>
public sealed class InferenceFunctions(Deployments deployments, LiveDeployment live)
{
    [Function("Completions")]
    public async Task<IActionResult> Completions([HttpTrigger(AuthorizationLevel.Function, "post", Route = "v1/completions")] HttpRequest req)
    {
        await OpenAiEndpoints.Handle(req.HttpContext, deployments, chat: false);
        return new EmptyResult();
    }

    [Function("ChatCompletions")]
    public async Task<IActionResult> ChatCompletions([HttpTrigger(AuthorizationLevel.Function, "post", Route = "v1/chat/completions")] HttpRequest req)
    {
        await OpenAiEndpoints.Handle(req.HttpContext, deployments, chat: true);
        return new EmptyResult();
    }

    [Function("Models")]
    public IActionResult Models([HttpTrigger(AuthorizationLevel.Function, "get", Route = "v1/models")] HttpRequest req) => new JsonResult(new
    {
        @object = "list",
        data = deployments.Current is { } d ? new[] { new { id = d.Id, @object = "model", created = d.Created, owned_by = "sio" } } : [],
    });

    [Function("Ready")]
    public IActionResult Ready([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "readyz")] HttpRequest req) =>
        deployments.Current is { } d ? new JsonResult(new { status = "ready", model = d.Id }) : new ObjectResult(new { status = "no model deployed" }) { StatusCode = 503 };

    /// <summary>The deployment event: deployments/current.json was written (Event Grid blob-created).</summary>
    [Function("OnDeployment")]
    public Task OnDeployment([BlobTrigger("deployments/current.json", Source = BlobTriggerSource.EventGrid, Connection = "SioStorage")] Stream manifest) =>
        live.RefreshAsync();
}
