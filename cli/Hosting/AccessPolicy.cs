using Grpc.AspNetCore.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Sio.Hosting;
using Sio.Serving;

namespace Sio.Cli.Hosting;

/// <summary>
/// One check in front of every endpoint of every listener an ASP.NET host opens. The API listener serves HTTP routes
/// only, behind <see cref="ApiKeyCheck"/>; the Durable Task sidecar listener (sio up) serves its gRPC service only, to
/// callers that present the process's own sidecar secret. Every answer is counted by status.
/// </summary>
public sealed class AccessPolicy(string? apiKey, int? sidecarPort = null, string? sidecarSecret = null)
{
    public const string SidecarHeader = "x-sio-sidecar";
    readonly ApiKeyCheck _keys = new(apiKey);

    public void Apply(WebApplication app) => app.Use(async (ctx, next) =>
    {
        if (Refusal(ctx) is { } refusal) await refusal.Write(ctx);
        else await next();
        HttpMetrics.Answered(ctx.Response.StatusCode);
    });

    ApiError? Refusal(HttpContext ctx)
    {
        bool grpc = ctx.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>() is not null;
        if (sidecarPort is { } port && ctx.Connection.LocalPort == port)
        {
            if (!grpc) return new ApiError(404, "not found", "invalid_request_error");
            bool ours = sidecarSecret is not null && ApiKey.Same(ctx.Request.Headers[SidecarHeader].ToString(), sidecarSecret);
            return ours ? null : new ApiError(401, "the orchestration sidecar serves this process only", "authentication_error");
        }
        if (grpc) return new ApiError(404, "not found", "invalid_request_error");
        return _keys.Refusal(ctx.Request);
    }
}
