namespace Sio.Artifacts;

/// <summary>Opens the store a --store value names.</summary>
public static class ObjectStores
{
    /// <summary>null: the embedded default folder; a connection string (UseDevelopmentStorage=true for Azurite, or AccountName=…): Azure Blob Storage; otherwise a folder.</summary>
    public static IObjectStore Open(string? spec) => spec switch
    {
        null or "" => FolderObjectStore.Default(),
        _ when spec.Contains('=') => BlobObjectStore.Connect(spec),
        _ => new FolderObjectStore(spec),
    };
}
