using Microsoft.AspNetCore.Http;

namespace Sio.Hosting;

/// <summary>An error answer in OpenAI's shape ({"error": {"message", "type", "param", "code"}}), which the console and OpenAI clients both read.</summary>
public sealed record ApiError(int Status, string Message, string Type, string? Param = null, string? Code = null)
{
    public Task Write(HttpContext ctx)
    {
        ctx.Response.StatusCode = Status;
        if (Status == 401) ctx.Response.Headers.WWWAuthenticate = "Bearer";
        return ctx.Response.WriteAsJsonAsync(new { error = new { message = Message, type = Type, param = Param, code = Code } });
    }

    public static ApiError NotFound(HttpRequest r) => new(404, $"no route {r.Method} {r.Path}", "invalid_request_error");
    public static ApiError MethodNotAllowed(HttpRequest r) => new(405, $"{r.Path} does not take {r.Method}", "invalid_request_error");

    /// <summary>The answer of a route whose capability this host lacks.</summary>
    public static ApiError NotOnThisHost(string host, string capability, string where) =>
        new(501, $"{host} does not {capability}; {where}", "not_implemented");
}
