using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;

namespace Sio.Hosting;

/// <summary>How an ASP.NET Core host (`sio up`, `sio serve`) maps the route table: one minimal-API endpoint per route.</summary>
public static class RouteMapping
{
    /// <summary>The name of the endpoint that answers a request no route takes (404, or 405 when the path takes another method).</summary>
    public const string NoRoute = "NoRoute";

    public static void MapApiRoutes(this IEndpointRouteBuilder app, IReadOnlyList<ApiRoute> routes)
    {
        foreach (var r in routes) app.MapMethods(r.Pattern, [r.Method], r.Handler).WithName(r.Name);
        // the same 404 and 405 answers as the Function Apps' dispatcher gives, in the OpenAI error shape
        var table = new RouteDispatcher(routes, new ApiKeyCheck(null));
        app.MapFallback("{*path}", ctx => (table.Match(ctx.Request.Method, ctx.Request.Path).OtherMethod
            ? ApiError.MethodNotAllowed(ctx.Request) : ApiError.NotFound(ctx.Request)).Write(ctx)).WithName(NoRoute);
    }
}
