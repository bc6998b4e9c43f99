using System.Collections.Concurrent;
using Sio.Artifacts;
using Sio.Models;
using Sio.Speculative;

namespace Sio.Pipeline;

/// <summary>
/// The pipeline's artifacts: content-addressed model folders (artifacts/models/KEY), staged datasets, and the references
/// a request names (uploads/NAME, artifacts/models/KEY, or a local path where allowed), brought to local files. Every
/// artifact's key is <see cref="Key"/> of what it was made from; an artifact is built in a scratch folder and published
/// whole (files first, manifest last), and a key already in the store is reused, never rebuilt.
/// </summary>
public sealed class ArtifactRepository(PipelineOptions options)
{
    public const string ModelsPrefix = "models", DatasetsPrefix = "datasets", MeasurementsPrefix = "measurements";
    public const string ModelRefPrefix = Containers.Artifacts + "/" + ModelsPrefix + "/";
    readonly ConcurrentDictionary<string, SemaphoreSlim> _keyLocks = new();

    public PipelineOptions Options => options;
    public IObjectStore Store => options.Store;


    /// <summary>Runs <paramref name="work"/> alone among this process's callers with the same key.</summary>
    public async Task<T> Locked<T>(string key, Func<Task<T>> work)
    {
        var gate = _keyLocks.GetOrAdd(key, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync();
        try { return await work(); } finally { gate.Release(); }
    }

    /// <summary>A fresh scratch folder (or file path, with <paramref name="extension"/>) under the work folder's <paramref name="area"/>, deleted when disposed.</summary>
    public Scratch NewScratch(string area, string extension = "") => new(Path.Combine(options.WorkDir, area, Guid.NewGuid().ToString("N") + extension));

    /// <summary>Whether an upload is a model that starts a run (a .zip, or a llama2.c .bin that is not a tok*.bin tokenizer).</summary>
    public static bool IsModelUpload(string name)
    {
        var file = Path.GetFileName(name).ToLowerInvariant();
        return file.EndsWith(".zip") || (file.EndsWith(".bin") && !file.StartsWith("tok"));
    }

    /// <summary>The key of an "artifacts/models/KEY" reference (a model already imported), else null.</summary>
    public static string? ArtifactKey(string reference) =>
        reference.StartsWith(ModelRefPrefix) && reference.Length > ModelRefPrefix.Length && !reference[ModelRefPrefix.Length..].Contains('/') ? reference[ModelRefPrefix.Length..] : null;

    /// <summary>Brings a reference (uploads/NAME or a local path) to a local path; an uploaded .bin comes with the tokenizers beside it.</summary>
    public async Task<string> FetchAsync(string reference, string field)
    {
        if (!reference.StartsWith(Containers.Uploads + "/"))
        {
            if (!options.AllowLocalPaths) throw new SioException($"{field} must name an upload (uploads/NAME), got '{reference}'");
            var path = Path.GetFullPath(reference);
            if (!File.Exists(path) && !Directory.Exists(path)) throw new SioException($"{field}: {reference} does not exist");
            return path;
        }
        var name = Containers.CheckName(reference[(Containers.Uploads.Length + 1)..], field);
        var dir = Path.Combine(options.WorkDir, "uploads", ContentAddress.Of(name));
        var local = Path.Combine(dir, Path.GetFileName(name));
        if (!await Store.DownloadAsync(Containers.Uploads, name, local)) throw new SioException($"{field}: {reference} is not in the uploads container of {Store.Location}");
        if (name.EndsWith(".bin")) await FetchTokenizersBeside(name, dir);
        return local;
    }

    async Task FetchTokenizersBeside(string name, string dir)
    {
        var folder = name.Contains('/') ? name[..(name.LastIndexOf('/') + 1)] : "";
        foreach (var o in await Store.ListAsync(Containers.Uploads, folder))
        {
            var file = o.Name[folder.Length..];
            if (!file.Contains('/') && o.Name != name && (file.StartsWith("tok") || file.StartsWith("tokenizer")))
                await Store.DownloadAsync(Containers.Uploads, o.Name, Path.Combine(dir, file));
        }
    }

    /// <summary>A staged file of the artifacts container (a dataset half, a datastore) as a local file.</summary>
    public async Task<string> ArtifactFileAsync(string name)
    {
        var local = Path.Combine(options.WorkDir, name);
        if (!File.Exists(local) && !await Store.DownloadAsync(Containers.Artifacts, name, local))
            throw new SioException($"dataset {name} is missing from {Store.Location}");
        return local;
    }

    /// <summary>A model artifact as a local folder (downloaded once per work folder).</summary>
    public Task<string> MaterializeAsync(string modelKey) => Locked("model:" + modelKey, async () =>
    {
        var folder = Path.Combine(options.WorkDir, ModelsPrefix, modelKey);
        if (!await ArtifactFolders.GetAsync(Store, Containers.Artifacts, ModelsPrefix, modelKey, folder))
            throw new SioException($"model artifact {modelKey} is missing from {Store.Location}");
        return folder;
    });

    /// <summary>A drafter as the engine takes it: draft:artifacts/models/KEY becomes draft:LOCAL-FOLDER, datastore:artifacts/… a local file.</summary>
    public async Task<string> LocalDrafterAsync(string drafter)
    {
        var spec = DrafterSpec.Parse(drafter, "drafter");
        if (spec is { Kind: DrafterKind.Datastore, Path: { } file } && IsArtifactFile(file)) return spec.At(await ArtifactFileAsync(file[(Containers.Artifacts.Length + 1)..])).ToString();
        if (spec is not { Kind: DrafterKind.DraftModel, Path: { } reference }) return drafter;
        if (ArtifactKey(reference) is { } key) return spec.At(await MaterializeAsync(key)).ToString();
        if (!options.AllowLocalPaths) throw new SioException($"speculative:draft needs an imported model (draft:{ModelRefPrefix}KEY), got '{reference}'");
        return drafter;
    }

    /// <summary>Whether a reference names a file staged in the artifacts container (artifacts/NAME).</summary>
    public static bool IsArtifactFile(string reference) => reference.StartsWith(Containers.Artifacts + "/");

    /// <summary>The model artifact stored under <paramref name="key"/>, or null.</summary>
    public async Task<ModelArtifact?> FindModelAsync(string key, string name)
    {
        var m = await ArtifactFolders.FindAsync(Store, Containers.Artifacts, ModelsPrefix, key);
        return m is null ? null : new ModelArtifact(key, name, m.Metadata.GetValueOrDefault("dtype", "float32"), long.Parse(m.Metadata.GetValueOrDefault("bytes", "0")), true);
    }

    /// <summary>
    /// The model artifact for <paramref name="key"/>: the stored one, or <paramref name="build"/> run in a scratch folder
    /// and published whole. One build per key at a time in this process; the store's manifest-last publish covers others.
    /// </summary>
    public Task<ModelArtifact> GetOrBuildModelAsync(string key, string name, Func<string, Task> build) => Locked(key, async () =>
    {
        if (await FindModelAsync(key, name) is { } hit) return hit;
        using var scratch = NewScratch("build");
        await build(scratch.Path);
        return await PublishModelAsync(key, name, scratch.Path);
    });

    /// <summary>Publishes a built model folder as artifacts/models/KEY.</summary>
    public async Task<ModelArtifact> PublishModelAsync(string key, string name, string folder)
    {
        var manifest = ModelManifest.Load(folder);
        long bytes = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Where(f => !f.Contains("/.sio/")).Sum(f => new FileInfo(f).Length);
        await ArtifactFolders.PutAsync(Store, Containers.Artifacts, ModelsPrefix, key, folder,
            new() { ["name"] = name, ["dtype"] = manifest.Dtype, ["bytes"] = bytes.ToString() });
        return new ModelArtifact(key, name, manifest.Dtype, bytes, false);
    }
}

/// <summary>A scratch path in the work folder, deleted (file or folder) when disposed: a failed step leaves nothing behind.</summary>
public sealed class Scratch(string path) : IDisposable
{
    public string Path { get; } = path;

    public void Dispose()
    {
        if (Directory.Exists(Path)) Directory.Delete(Path, true);
        else if (File.Exists(Path)) File.Delete(Path);
    }
}
