using Microsoft.AspNetCore.Http;
using Sio.Serving;

namespace Sio.Hosting;

/// <summary>The API key check in front of every route but <see cref="ApiRoutes.PublicPaths"/>; no key configured lets every request through.</summary>
public sealed class ApiKeyCheck(string? apiKey)
{
    public ApiError? Refusal(HttpRequest r)
    {
        if (apiKey is null || ApiRoutes.IsPublic(r) || ApiKey.Matches(r.Headers.Authorization.ToString(), apiKey)) return null;
        return new ApiError(401, "missing or wrong API key (Authorization: Bearer KEY)", "authentication_error");
    }
}
