using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Template;

namespace Sio.Hosting;

/// <summary>
/// Routes a request to the table without ASP.NET's endpoint routing, for hosts that hand every request to one handler:
/// the Function Apps' catch-all HTTP trigger. The same checks run as on the other hosts: the API key, then the route
/// (404 when no pattern matches, 405 when one matches with another method), and every answer is counted.
/// </summary>
public sealed class RouteDispatcher(IReadOnlyList<ApiRoute> routes, ApiKeyCheck keys)
{
    readonly (ApiRoute Route, TemplateMatcher Matcher)[] _matchers =
        [.. routes.Select(r => (r, new TemplateMatcher(TemplateParser.Parse(r.Pattern.TrimStart('/')), new RouteValueDictionary())))];

    public IReadOnlyList<ApiRoute> Routes => routes;

    public async Task DispatchAsync(HttpContext ctx)
    {
        try
        {
            if (keys.Refusal(ctx.Request) is { } refusal) { await refusal.Write(ctx); return; }
            var (route, values, otherMethod) = Match(ctx.Request.Method, ctx.Request.Path);
            if (route is null)
            {
                await (otherMethod ? ApiError.MethodNotAllowed(ctx.Request) : ApiError.NotFound(ctx.Request)).Write(ctx);
                return;
            }
            foreach (var (k, v) in values!) ctx.Request.RouteValues[k] = v;
            await route.Handler(ctx);
        }
        finally { HttpMetrics.Answered(ctx.Response.StatusCode); }
    }

    /// <summary>The first route (in table order, literals before parameters) whose pattern and method match.</summary>
    public (ApiRoute? Route, RouteValueDictionary? Values, bool OtherMethod) Match(string method, PathString path)
    {
        bool other = false;
        foreach (var (route, matcher) in _matchers)
        {
            var values = new RouteValueDictionary();
            if (!matcher.TryMatch(path, values)) continue;
            if (string.Equals(route.Method, method, StringComparison.OrdinalIgnoreCase) || (route.Method == "GET" && HttpMethods.IsHead(method)))
                return (route, values, false);
            other = true;
        }
        return (null, null, other);
    }
}
