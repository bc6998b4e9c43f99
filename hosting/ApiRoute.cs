using Microsoft.AspNetCore.Http;

namespace Sio.Hosting;

/// <summary>One endpoint of sio's HTTP surface: a method, an ASP.NET route pattern, a name, and the handler.</summary>
public sealed record ApiRoute(string Method, string Pattern, string Name, RequestDelegate Handler)
{
    public override string ToString() => $"{Method} {Pattern}";
}
