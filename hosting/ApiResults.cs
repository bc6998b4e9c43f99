using Microsoft.AspNetCore.Http;
using Sio.Pipeline;

namespace Sio.Hosting;

/// <summary>Writes core's host-free <see cref="ApiResult"/> as an HTTP answer: status, Location, and a JSON or problem+json body.</summary>
public static class ApiResults
{
    public static async Task Write(HttpContext c, ApiResult r)
    {
        c.Response.StatusCode = r.Status;
        if (r.Location is not null) c.Response.Headers.Location = r.Location;
        if (r.RetryAfterSeconds is int s) c.Response.Headers.RetryAfter = s.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (r.Body is null) return;
        await c.Response.WriteAsJsonAsync(r.Body, r.Body.GetType(), OptimizationRequest.Json, r.Problem ? "application/problem+json" : "application/json", c.RequestAborted);
    }
}
