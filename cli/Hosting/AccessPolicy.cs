using Grpc.AspNetCore.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Sio.Serving;

namespace Sio.Cli.Hosting;

/// <summary>
/// One check in front of every endpoint of every listener a host opens. The API listener serves HTTP routes only, each
/// behind the key when one is set (except <see cref="PublicPaths"/>); the Durable Task sidecar listener (sio up) serves
/// its gRPC service only, to callers that present the process's own sidecar secret. Every answer is counted by status.
/// </summary>
public sealed class AccessPolicy(string? apiKey, int? sidecarPort = null, string? sidecarSecret = null)
{
    public const string SidecarHeader = "x-sio-sidecar";

    /// <summary>What a caller without the key may fetch: liveness, and the console's static page (it holds no data and asks for the key).</summary>
    public static readonly string[] PublicPaths = ["/healthz", "/", "/console.js", "/console.css"];

    public void Apply(WebApplication app) => app.Use(async (ctx, next) =>
    {
        if (Refusal(ctx) is var (status, message, type))
        {
            if (status == 401) ctx.Response.Headers.WWWAuthenticate = "Bearer";
            await Error(ctx, status, message, type);
        }
        else await next();
        HttpMetrics.Answered(ctx.Response.StatusCode);
    });

    (int Status, string Message, string Type)? Refusal(HttpContext ctx)
    {
        bool grpc = ctx.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>() is not null;
        if (sidecarPort is { } port && ctx.Connection.LocalPort == port)
        {
            if (!grpc) return (404, "not found", "invalid_request_error");
            bool ours = sidecarSecret is not null && ApiKey.Same(ctx.Request.Headers[SidecarHeader].ToString(), sidecarSecret);
            return ours ? null : (401, "the orchestration sidecar serves this process only", "authentication_error");
        }
        if (grpc) return (404, "not found", "invalid_request_error");
        if (apiKey is null || IsPublic(ctx.Request) || ApiKey.Matches(ctx.Request.Headers.Authorization.ToString(), apiKey)) return null;
        return (401, "missing or wrong API key (Authorization: Bearer KEY)", "authentication_error");
    }

    static bool IsPublic(HttpRequest r) => (HttpMethods.IsGet(r.Method) || HttpMethods.IsHead(r.Method)) && PublicPaths.Contains(r.Path.Value);

    static Task Error(HttpContext ctx, int status, string message, string type)
    {
        ctx.Response.StatusCode = status;
        return ctx.Response.WriteAsJsonAsync(new { error = new { message, type, param = (string?)null, code = (string?)null } });
    }
}
