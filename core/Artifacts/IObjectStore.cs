namespace Sio.Artifacts;

/// <summary>
/// The pipeline's storage: named containers of objects, as in Azure Blob Storage. The containers are
/// <see cref="Containers.Uploads"/> (models and datasets users send), <see cref="Containers.Artifacts"/>
/// (content-addressed model folders and measurements), <see cref="Containers.Reports"/> and
/// <see cref="Containers.Deployments"/>. Every object carries the sha256 of its bytes in its metadata;
/// a download that does not match it fails.
/// </summary>
public interface IObjectStore
{
    /// <summary>Where the store is, for messages (a folder or an account URL).</summary>
    string Location { get; }

    /// <summary>Writes a file (streamed in blocks), with its sha256 and the given metadata; the object appears whole.</summary>
    Task UploadAsync(string container, string name, string file, IReadOnlyDictionary<string, string>? metadata = null, CancellationToken ct = default);

    /// <summary>Writes a small text object (JSON), whole.</summary>
    Task PutTextAsync(string container, string name, string text, CancellationToken ct = default);

    /// <summary>Reads a small text object, or null when there is none.</summary>
    Task<string?> GetTextAsync(string container, string name, CancellationToken ct = default);

    /// <summary>Copies an object to a local file (written beside it and renamed), checking its sha256; false when there is no such object.</summary>
    Task<bool> DownloadAsync(string container, string name, string file, CancellationToken ct = default);

    Task<bool> ExistsAsync(string container, string name, CancellationToken ct = default);

    /// <summary>Object names under a prefix, with their sizes and last-modified times.</summary>
    Task<IReadOnlyList<StoredObject>> ListAsync(string container, string prefix = "", CancellationToken ct = default);

    Task DeleteAsync(string container, string name, CancellationToken ct = default);
}

public sealed record StoredObject(string Name, long Size, DateTimeOffset LastModified, IReadOnlyDictionary<string, string> Metadata);

/// <summary>The container names every store uses.</summary>
public static class Containers
{
    public const string Uploads = "uploads", Artifacts = "artifacts", Reports = "reports", Deployments = "deployments";
    public static readonly string[] All = [Uploads, Artifacts, Reports, Deployments];
    public const string Sha256Key = "sha256";

    /// <summary>
    /// Refuses names that could leave their container or that blob storage would alter: empty
    /// segments, "." or "..", backslashes, control characters, or over 512 characters.
    /// </summary>
    public static string CheckName(string name, string what = "name")
    {
        if (string.IsNullOrWhiteSpace(name)) throw new SioException($"the {what} is empty");
        if (name.Length > 512) throw new SioException($"the {what} is longer than 512 characters");
        if (name.Contains('\\') || name.Any(char.IsControl)) throw new SioException($"the {what} '{name}' has a backslash or a control character");
        if (name.StartsWith('/') || name.Split('/').Any(s => s is "" or "." or ".."))
            throw new SioException($"the {what} '{name}' is not a plain relative path (no leading '/', empty, '.' or '..' segments)");
        if (name.Split('/').Any(s => System.Text.Encoding.UTF8.GetByteCount(s) > 255))
            throw new SioException($"the {what} has a path segment over 255 bytes (file systems refuse such names)");
        if (System.Text.Unicode.Utf8.FromUtf16(name, new byte[name.Length * 3], out _, out _, replaceInvalidSequences: false) != System.Buffers.OperationStatus.Done)
            throw new SioException($"the {what} is not valid Unicode");
        return name;
    }
}
