using Microsoft.AspNetCore.Http;
using Sio.Pipeline;
using Sio.Serving;

namespace Sio.Hosting;

/// <summary>
/// What one host offers behind the route table. Every host maps every route; a route whose capability this host lacks
/// answers 501 naming the host that has it (the pipeline runs on `sio up` and the optimizer app, models are served by
/// `sio up`, `sio serve` and the inference app).
/// </summary>
public sealed class HostServices
{
    /// <summary>How the host names itself in a 501 ("sio serve", "the inference app").</summary>
    public required string Name { get; init; }

    /// <summary>The pipeline API for a request (the Functions app builds it from the request's Durable client); null when this host runs no pipeline.</summary>
    public Func<HttpContext, OptimizationApi?> Pipeline { get; init; } = _ => null;

    /// <summary>The deployments this host serves; null when it serves no model.</summary>
    public Deployments? Deployments { get; init; }

    /// <summary>Loads a local model folder for POST /api/deployments {"model": FOLDER}; null unless the operator allowed local paths.</summary>
    public Func<string, Deployment>? LoadFolder { get; init; }

    /// <summary>Answers GET /metrics in Prometheus' text format.</summary>
    public required RequestDelegate Metrics { get; init; }
}
