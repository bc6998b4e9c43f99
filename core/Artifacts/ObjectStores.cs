namespace Sio.Artifacts;

/// <summary>Opens the store a --store value names.</summary>
public static class ObjectStores
{
    /// <summary>null: $SIO_STORE, else the embedded default folder; a connection string (UseDevelopmentStorage=true for Azurite, or AccountName=…): Azure Blob Storage; otherwise a folder.</summary>
    public static IObjectStore Open(string? spec) => (string.IsNullOrEmpty(spec) ? Environment.GetEnvironmentVariable("SIO_STORE") : spec) switch
    {
        null or "" => FolderObjectStore.Default(),
        var s when s.Contains('=') => BlobObjectStore.Connect(s),
        var s => new FolderObjectStore(s),
    };
}
