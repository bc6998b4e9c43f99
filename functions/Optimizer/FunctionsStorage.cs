using Azure.Identity;
using Azure.Storage.Blobs;
using Sio.Artifacts;
using Sio.Pipeline;

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

    public static PipelineOptions PipelineOptions() => new()
    {
        Store = Store(),
        WorkDir = Path.Combine(Path.GetTempPath(), "sio-work"),
        AllowLocalPaths = false, // on Azure a request names uploads only
    };
}
