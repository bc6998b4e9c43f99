using System.Text.Json;

namespace Sio.Artifacts;

/// <summary>
/// A content-addressed store of artifact folders on the local disk (the embedded default; the blob
/// store of the pipeline has the same layout): <c>ROOT/KIND/KEY/</c> holds the files and
/// <c>entry.json</c>, which lists each file's sha256; an entry is built in a work folder and
/// published by one rename, so a reader never sees half of one. An entry whose files do not match their hashes is discarded, never used.
/// </summary>
public sealed class ArtifactStore(string root)
{
    public const string EntryFile = "entry.json";
    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
    public string Root { get; } = Path.GetFullPath(root);

    /// <summary>The default store: $SIO_HOME/artifacts, else ~/.sio/artifacts.</summary>
    public static ArtifactStore Default() => new(Path.Combine(SioHome.Path, "artifacts"));

    public sealed record Entry(string Key, string Kind, Dictionary<string, string> Files, Dictionary<string, string> Metadata, DateTime CreatedUtc);

    string PathOf(string kind, string key) => Path.Combine(Root, kind, key);

    public enum Lookup { Miss, Hit, Corrupt }

    /// <summary>Finds an entry and checks every file against its hash; a corrupt entry is deleted.</summary>
    public (Lookup Result, string? Path, Entry? Entry, string? Problem) Find(string kind, string key)
    {
        var dir = PathOf(kind, key);
        var entryPath = Path.Combine(dir, EntryFile);
        if (!File.Exists(entryPath)) return (Lookup.Miss, null, null, null); // entries appear whole, by one rename
        string? problem = null;
        Entry? entry = null;
        try
        {
            entry = JsonSerializer.Deserialize<Entry>(File.ReadAllText(entryPath));
            if (entry is null || entry.Key != key) problem = "entry.json does not name this key";
            else
                foreach (var (name, sha) in entry.Files)
                {
                    var file = Path.Combine(dir, name);
                    if (!File.Exists(file)) { problem = $"{name} is missing"; break; }
                    if (Models.ModelManifest.Sha256File(file) != sha) { problem = $"{name} does not match its sha256"; break; }
                }
        }
        catch (JsonException e) { problem = $"entry.json is unreadable ({e.Message})"; }
        if (problem is null) return (Lookup.Hit, dir, entry, null);
        Directory.Delete(dir, true);
        return (Lookup.Corrupt, null, null, problem);
    }

    /// <summary>
    /// Publishes a finished work folder under its key: entry.json (every file's sha256) is written into
    /// the work folder last, then one rename makes the entry appear whole. If another writer published
    /// the same key first, its entry stands and this work folder is discarded.
    /// </summary>
    public string Put(string kind, string key, string folder, Dictionary<string, string> metadata)
    {
        var files = Directory.GetFiles(folder).Where(f => Path.GetFileName(f) != EntryFile)
            .ToDictionary(f => Path.GetFileName(f), Models.ModelManifest.Sha256File);
        var entry = new Entry(key, kind, files, metadata, DateTime.UtcNow);
        File.WriteAllText(Path.Combine(folder, EntryFile), JsonSerializer.Serialize(entry, Indented));
        var dir = PathOf(kind, key);
        Directory.CreateDirectory(Path.GetDirectoryName(dir)!);
        if (Directory.Exists(dir) && !File.Exists(Path.Combine(dir, EntryFile))) Directory.Delete(dir, true); // debris of an older layout
        try { Directory.Move(folder, dir); }
        catch (IOException) when (File.Exists(Path.Combine(dir, EntryFile)))
        {
            Directory.Delete(folder, true); // someone else published this key meanwhile
        }
        return dir;
    }

    /// <summary>A folder to build an entry in, on the store's file system (so Put is a rename).</summary>
    public string NewWorkFolder()
    {
        var dir = Path.Combine(Root, ".work", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }
}
