using Azure.Identity;
using Azure.Storage.Blobs;
using Sio.Artifacts;
using Sio.Hosting;
using Sio.Pipeline;
using Sio.Serving;

namespace Sio.Functions;

/// <summary>
/// The app's storage from its settings: SioStorage__blobServiceUri with the app's managed identity (on
/// Azure, no keys), else the SioStorage connection string (Azurite: UseDevelopmentStorage=true).
/// </summary>
public static class FunctionsStorage
{
    public static IObjectStore Store()
    {
        if (Environment.GetEnvironmentVariable("SioStorage__blobServiceUri") is { Length: > 0 } uri)
            return new BlobObjectStore(new BlobServiceClient(new Uri(uri), new DefaultAzureCredential()));
        return BlobObjectStore.Connect(Environment.GetEnvironmentVariable("SioStorage") ?? "UseDevelopmentStorage=true");
    }

    /// <summary>Whether the app runs on Azure: App Service / Functions set WEBSITE_INSTANCE_ID, Container Apps CONTAINER_APP_NAME.</summary>
    static bool OnAzure => Environment.GetEnvironmentVariable("WEBSITE_INSTANCE_ID") is { Length: > 0 } || Environment.GetEnvironmentVariable("CONTAINER_APP_NAME") is { Length: > 0 };

    /// <summary>
    /// The app's API key check: SIO_API_KEY (or SIO_API_KEY_FILE). On Azure the key is required, as on any public
    /// address: without one the app refuses to start rather than serve an open API.
    /// </summary>
    public static ApiKeyCheck KeyCheck()
    {
        var key = ApiKey.Resolve(null);
        if (key is null && OnAzure)
            throw new SioException($"the app has no API key: set the {ApiKey.Variable} app setting (infra/main.bicep takes it as the apiKey parameter)");
        return new ApiKeyCheck(key);
    }

    public static PipelineOptions PipelineOptions() => new()
    {
        Store = Store(),
        WorkDir = Path.Combine(Path.GetTempPath(), "sio-work"),
        AllowLocalPaths = false, // on Azure a request names uploads only
    };
}
