using System.Text.Json;

namespace Sio.Artifacts;

/// <summary>
/// The embedded default store: a local folder with the blob layout, ROOT/CONTAINER/NAME. Metadata
/// (the sha256 included) lives in ROOT/.meta/CONTAINER/NAME.json; files are written beside their
/// place and renamed, so a reader never sees half an object.
/// </summary>
public sealed class FolderObjectStore(string root) : IObjectStore
{
    public string Root { get; } = Path.GetFullPath(root);
    public string Location => Root;

    /// <summary>The default: $SIO_HOME/store, else ~/.sio/store.</summary>
    public static FolderObjectStore Default() => new(Path.Combine(SioHome.Path, "store"));

    string PathOf(string container, string name) => Path.Combine(Root, container, Containers.CheckName(name));
    string MetaOf(string container, string name) => Path.Combine(Root, ".meta", container, Containers.CheckName(name) + ".json");

    public async Task UploadAsync(string container, string name, string file, IReadOnlyDictionary<string, string>? metadata = null, CancellationToken ct = default)
    {
        var meta = new Dictionary<string, string>(metadata ?? new Dictionary<string, string>()) { [Containers.Sha256Key] = Models.ModelManifest.Sha256File(file) };
        var target = PathOf(container, name);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        var temp = target + $".tmp-{Guid.NewGuid():N}";
        try
        {
            await using (var src = File.OpenRead(file))
            await using (var dst = File.Create(temp)) await src.CopyToAsync(dst, 1 << 20, ct);
            await WriteMeta(container, name, meta, ct);
            File.Move(temp, target, overwrite: true);
        }
        finally { if (File.Exists(temp)) File.Delete(temp); }
    }

    async Task WriteMeta(string container, string name, Dictionary<string, string> meta, CancellationToken ct)
    {
        var path = MetaOf(container, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temp = path + $".tmp-{Guid.NewGuid():N}";
        await File.WriteAllTextAsync(temp, JsonSerializer.Serialize(meta), ct);
        File.Move(temp, path, overwrite: true);
    }

    public async Task PutTextAsync(string container, string name, string text, CancellationToken ct = default)
    {
        var temp = Path.Combine(Path.GetTempPath(), $"sio-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(temp, text, ct);
        try { await UploadAsync(container, name, temp, null, ct); }
        finally { File.Delete(temp); }
    }

    public async Task<string?> GetTextAsync(string container, string name, CancellationToken ct = default)
    {
        var path = PathOf(container, name);
        return File.Exists(path) ? await File.ReadAllTextAsync(path, ct) : null;
    }

    public async Task<bool> DownloadAsync(string container, string name, string file, CancellationToken ct = default)
    {
        var path = PathOf(container, name);
        if (!File.Exists(path)) return false;
        var expected = ReadMeta(container, name).GetValueOrDefault(Containers.Sha256Key);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(file))!);
        var temp = file + $".tmp-{Guid.NewGuid():N}";
        try
        {
            await using (var src = File.OpenRead(path))
            await using (var dst = File.Create(temp)) await src.CopyToAsync(dst, 1 << 20, ct);
            if (expected is not null && Models.ModelManifest.Sha256File(temp) != expected)
                throw new SioException($"{container}/{name} in {Root} does not match its sha256; the stored object is damaged");
            File.Move(temp, file, overwrite: true);
            return true;
        }
        finally { if (File.Exists(temp)) File.Delete(temp); }
    }

    Dictionary<string, string> ReadMeta(string container, string name)
    {
        var path = MetaOf(container, name);
        return File.Exists(path) ? JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(path)) ?? [] : [];
    }

    public Task<bool> ExistsAsync(string container, string name, CancellationToken ct = default) => Task.FromResult(File.Exists(PathOf(container, name)));

    public Task<IReadOnlyList<StoredObject>> ListAsync(string container, string prefix = "", CancellationToken ct = default)
    {
        var dir = Path.Combine(Root, container);
        IReadOnlyList<StoredObject> list = !Directory.Exists(dir) ? [] : Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
            .Where(f => !Path.GetFileName(f).Contains(".tmp-"))
            .Select(f => (File: f, Name: Path.GetRelativePath(dir, f).Replace('\\', '/')))
            .Where(x => x.Name.StartsWith(prefix, StringComparison.Ordinal))
            .OrderBy(x => x.Name, StringComparer.Ordinal)
            .Select(x => new StoredObject(x.Name, new FileInfo(x.File).Length, File.GetLastWriteTimeUtc(x.File), ReadMeta(container, x.Name)))
            .ToList();
        return Task.FromResult(list);
    }

    public Task DeleteAsync(string container, string name, CancellationToken ct = default)
    {
        File.Delete(PathOf(container, name));
        File.Delete(MetaOf(container, name));
        return Task.CompletedTask;
    }
}
