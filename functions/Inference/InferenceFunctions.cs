using Microsoft.AspNetCore.Http;
using Microsoft.Azure.Functions.Worker;
using Sio.Hosting;
using Sio.Serving;

namespace Sio.Functions;

/// <summary>The inference app's triggers: the HTTP surface (the route table of every host) over the deployed model, and the deployment event.</summary>
public sealed class InferenceFunctions(LiveDeployment live, RouteDispatcher http)
{
    /// <summary>
    /// Every HTTP request, dispatched to the route table (host.json sets an empty route prefix, so the paths are those of
    /// `sio serve`). The app runs no pipeline, so the /api routes answer 501 but for POST /api/deployments of a folder.
    /// </summary>
    [Function("Http")]
    public Task Http([HttpTrigger(AuthorizationLevel.Anonymous, "get", "head", "post", "put", "delete", Route = "{*path}")] HttpRequest req) =>
        http.DispatchAsync(req.HttpContext);

    public static RouteDispatcher Routes(Deployments deployments, ApiKeyCheck keys, RequestDelegate metrics) => new(ApiRoutes.Table(new HostServices
    {
        Name = "the inference Function App", Deployments = deployments, Metrics = metrics,
    }), keys);

    /// <summary>
    /// The deployment event: deployments/current.json was written. Event Grid delivers the blob-created event into the
    /// deployment-events queue (with its own identity: no webhook key to manage, and a replica scaled to zero wakes on it);
    /// the app then serves what current.json names, whatever the event says.
    /// </summary>
    [Function("OnDeployment")]
    public Task OnDeployment([QueueTrigger(DeploymentQueue, Connection = "SioStorage")] string gridEvent) => live.RefreshAsync();

    /// <summary>The queue infra/main.bicep points the deployments subscription at.</summary>
    public const string DeploymentQueue = "deployment-events";
}
