using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;

namespace Sio.Artifacts;

/// <summary>
/// Azure Blob Storage (or Azurite): one blob container per <see cref="Containers"/> name. Files are
/// staged as 4 MiB blocks and committed in one call with their sha256 in the metadata, so a blob
/// appears whole; downloads are checked against that sha256.
/// </summary>
public sealed class BlobObjectStore : IObjectStore
{
    const int BlockSize = 4 << 20;
    readonly BlobServiceClient _service;
    readonly HashSet<string> _created = [];

    public BlobObjectStore(BlobServiceClient service) => _service = service;

    /// <summary>From a connection string ("UseDevelopmentStorage=true" is Azurite).</summary>
    public static BlobObjectStore Connect(string connectionString) => new(new BlobServiceClient(connectionString));

    public string Location => _service.Uri.ToString();

    async Task<BlobContainerClient> Container(string name, CancellationToken ct)
    {
        var c = _service.GetBlobContainerClient(name);
        bool create;
        lock (_created) create = !_created.Contains(name);
        if (create)
        {
            await c.CreateIfNotExistsAsync(cancellationToken: ct);
            lock (_created) _created.Add(name);
        }
        return c;
    }

    public async Task UploadAsync(string container, string name, string file, IReadOnlyDictionary<string, string>? metadata = null, CancellationToken ct = default)
    {
        var meta = new Dictionary<string, string>(metadata ?? new Dictionary<string, string>()) { [Containers.Sha256Key] = Models.ModelManifest.Sha256File(file) };
        var blob = (await Container(container, ct)).GetBlockBlobClient(Containers.CheckName(name));
        var ids = new List<string>();
        var buffer = new byte[BlockSize];
        await using var src = File.OpenRead(file);
        int read;
        while ((read = await src.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, ct)) > 0)
        {
            var id = Convert.ToBase64String(BitConverter.GetBytes(ids.Count).Concat(new byte[4]).ToArray());
            using var block = new MemoryStream(buffer, 0, read, writable: false);
            await blob.StageBlockAsync(id, block, cancellationToken: ct);
            ids.Add(id);
        }
        await blob.CommitBlockListAsync(ids, new CommitBlockListOptions { Metadata = meta }, ct);
    }

    public async Task PutTextAsync(string container, string name, string text, CancellationToken ct = default)
    {
        var blob = (await Container(container, ct)).GetBlobClient(Containers.CheckName(name));
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        var meta = new Dictionary<string, string> { [Containers.Sha256Key] = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes)) };
        await blob.UploadAsync(new BinaryData(bytes), new BlobUploadOptions { Metadata = meta, HttpHeaders = new BlobHttpHeaders { ContentType = "application/json" } }, ct);
    }

    public async Task<string?> GetTextAsync(string container, string name, CancellationToken ct = default)
    {
        try
        {
            var r = await (await Container(container, ct)).GetBlobClient(Containers.CheckName(name)).DownloadContentAsync(ct);
            return r.Value.Content.ToString();
        }
        catch (RequestFailedException e) when (e.Status == 404) { return null; }
    }

    public async Task<bool> DownloadAsync(string container, string name, string file, CancellationToken ct = default)
    {
        var blob = (await Container(container, ct)).GetBlobClient(Containers.CheckName(name));
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(file))!);
        var temp = file + $".tmp-{Guid.NewGuid():N}";
        try
        {
            BlobProperties props;
            try { props = (await blob.GetPropertiesAsync(cancellationToken: ct)).Value; }
            catch (RequestFailedException e) when (e.Status == 404) { return false; }
            await blob.DownloadToAsync(temp, new BlobDownloadToOptions { Conditions = new BlobRequestConditions { IfMatch = props.ETag } }, ct);
            if (props.Metadata.TryGetValue(Containers.Sha256Key, out var expected) && Models.ModelManifest.Sha256File(temp) != expected)
                throw new SioException($"{container}/{name} in {Location} does not match its sha256; the stored blob is damaged");
            File.Move(temp, file, overwrite: true);
            return true;
        }
        finally { if (File.Exists(temp)) File.Delete(temp); }
    }

    public async Task<bool> ExistsAsync(string container, string name, CancellationToken ct = default) =>
        (await (await Container(container, ct)).GetBlobClient(Containers.CheckName(name)).ExistsAsync(ct)).Value;

    public async Task<IReadOnlyList<StoredObject>> ListAsync(string container, string prefix = "", CancellationToken ct = default)
    {
        var list = new List<StoredObject>();
        await foreach (var b in (await Container(container, ct)).GetBlobsAsync(new GetBlobsOptions { Traits = BlobTraits.Metadata, Prefix = prefix }, ct))
            list.Add(new StoredObject(b.Name, b.Properties.ContentLength ?? 0, b.Properties.LastModified ?? default, new Dictionary<string, string>(b.Metadata)));
        return list;
    }

    public async Task DeleteAsync(string container, string name, CancellationToken ct = default) =>
        await (await Container(container, ct)).GetBlobClient(Containers.CheckName(name)).DeleteIfExistsAsync(cancellationToken: ct);
}
