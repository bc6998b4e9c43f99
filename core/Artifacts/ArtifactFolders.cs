using System.Text.Json;

namespace Sio.Artifacts;

/// <summary>
/// A model folder (or any folder of files) stored under a key in an <see cref="IObjectStore"/>:
/// PREFIX/KEY/FILE for each file, then PREFIX/KEY/manifest.json, written last, that lists every
/// file's sha256. A folder without its manifest does not exist for readers, so an upload cut short
/// is never used; writing the same key again is harmless (same content, same names).
/// </summary>
public static class ArtifactFolders
{
    public const string ManifestFile = "manifest.json";
    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public sealed record Manifest(string Key, Dictionary<string, string> Files, Dictionary<string, string> Metadata, DateTime CreatedUtc);

    static string Name(string prefix, string key, string file) => $"{prefix}/{key}/{file}";

    public static async Task<Manifest?> FindAsync(IObjectStore store, string container, string prefix, string key, CancellationToken ct = default)
    {
        var text = await store.GetTextAsync(container, Name(prefix, key, ManifestFile), ct);
        return text is null ? null : JsonSerializer.Deserialize<Manifest>(text);
    }

    /// <summary>Uploads every file of a folder (recursively) and then its manifest.</summary>
    public static async Task<Manifest> PutAsync(IObjectStore store, string container, string prefix, string key, string folder,
        Dictionary<string, string>? metadata = null, CancellationToken ct = default)
    {
        var files = new Dictionary<string, string>();
        foreach (var file in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var rel = Path.GetRelativePath(folder, file).Replace('\\', '/');
            if (rel == ManifestFile || rel.StartsWith(".sio/")) continue; // runtime caches stay local
            await store.UploadAsync(container, Name(prefix, key, rel), file, null, ct);
            files[rel] = Models.ModelManifest.Sha256File(file);
        }
        var manifest = new Manifest(key, files, metadata ?? [], DateTime.UtcNow);
        await store.PutTextAsync(container, Name(prefix, key, ManifestFile), JsonSerializer.Serialize(manifest, Indented), ct);
        return manifest;
    }

    /// <summary>
    /// Makes a stored folder available at <paramref name="folder"/>: downloaded into a work folder beside
    /// it, every file checked against the manifest, then renamed into place. A folder already there
    /// with a matching manifest is reused. Returns false when the store has no such key.
    /// </summary>
    public static async Task<bool> GetAsync(IObjectStore store, string container, string prefix, string key, string folder, CancellationToken ct = default)
    {
        var manifest = await FindAsync(store, container, prefix, key, ct);
        if (manifest is null) return false;
        folder = Path.GetFullPath(folder);
        var local = Path.Combine(folder, ManifestFile);
        if (File.Exists(local) && JsonSerializer.Deserialize<Manifest>(File.ReadAllText(local)) is { } have && have.Key == key
            && manifest.Files.All(f => have.Files.GetValueOrDefault(f.Key) == f.Value)) return true;
        var work = folder + $".tmp-{Guid.NewGuid():N}";
        try
        {
            Directory.CreateDirectory(work);
            foreach (var (rel, sha) in manifest.Files)
            {
                Containers.CheckName(rel, "file name in the manifest");
                var target = Path.Combine(work, rel);
                if (!await store.DownloadAsync(container, Name(prefix, key, rel), target, ct))
                    throw new SioException($"{container}/{Name(prefix, key, rel)} is listed in its manifest but missing from {store.Location}");
                if (Models.ModelManifest.Sha256File(target) != sha)
                    throw new SioException($"{container}/{Name(prefix, key, rel)} does not match the sha256 in its manifest");
            }
            File.WriteAllText(Path.Combine(work, ManifestFile), JsonSerializer.Serialize(manifest));
            if (Directory.Exists(folder)) Directory.Delete(folder, true);
            Directory.CreateDirectory(Path.GetDirectoryName(folder)!);
            Directory.Move(work, folder);
            return true;
        }
        finally { if (Directory.Exists(work)) Directory.Delete(work, true); }
    }
}
