using System.IO.Compression;
using Microsoft.DurableTask;
using Sio.Artifacts;
using Sio.Generation;
using Sio.Models;

namespace Sio.Pipeline;

/// <summary>Imports (or adopts) the model: a llama2.c .bin, a Hugging Face folder, a sio model folder, or a .zip of either.</summary>
public sealed class ImportModel(ArtifactRepository artifacts) : TaskActivity<ImportInput, ModelArtifact>
{
    public override Task<ModelArtifact> RunAsync(TaskActivityContext context, ImportInput input) => PipelineTraces.Step("import", context, input.Model, () => RunAsync(input));

    public async Task<ModelArtifact> RunAsync(ImportInput input)
    {
        if (ArtifactRepository.ArtifactKey(input.Model) is { } artifactKey) // an imported model: nothing to do
            return await artifacts.FindModelAsync(artifactKey, input.Model) ?? throw new SioException($"model: {input.Model} is not in the artifacts container of {artifacts.Store.Location}");
        var source = await artifacts.FetchAsync(input.Model, "model");
        var tokenizer = input.Tokenizer is null ? null : await artifacts.FetchAsync(input.Tokenizer, "tokenizer");
        using var unpackDir = artifacts.NewScratch("unpack");
        var unpacked = source.EndsWith(".zip", StringComparison.OrdinalIgnoreCase) ? Unzip(input.Model, source, unpackDir.Path) : source;
        var key = ContentAddress.Of("import/1", SourceHash(unpacked), tokenizer is null ? "" : ModelManifest.Sha256File(tokenizer));
        var name = Path.GetFileNameWithoutExtension(input.Model.TrimEnd('/'));
        if (Directory.Exists(unpacked) && File.Exists(Path.Combine(unpacked, ModelManifest.FileName))) // a sio model folder: adopted as it is
            return await artifacts.Locked(key, async () => await artifacts.FindModelAsync(key, name) ?? await AdoptAsync(key, name, unpacked));
        var checkpoint = Directory.Exists(unpacked) && !File.Exists(Path.Combine(unpacked, "config.json"))
            ? Directory.GetFiles(unpacked, "*.bin").Where(f => !Path.GetFileName(f).StartsWith("tok")).SingleOrDefault()
              ?? throw new SioException($"model: {input.Model} holds no single llama2.c .bin")
            : unpacked;
        return await artifacts.GetOrBuildModelAsync(key, name, outDir =>
        {
            ModelImporter.Import(new ImportRequest { Source = checkpoint, Tokenizer = tokenizer }, outDir);
            return Task.CompletedTask;
        });
    }

    async Task<ModelArtifact> AdoptAsync(string key, string name, string folder)
    {
        Model.Load(folder, artifacts.Options.ModelOptions).Dispose(); // it must load before it is published
        return await artifacts.PublishModelAsync(key, name, folder);
    }

    static string SourceHash(string path) => Directory.Exists(path)
        ? ContentAddress.Of(Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories).Where(f => !f.Contains("/.sio/")).Order(StringComparer.Ordinal)
            .Select(f => Path.GetRelativePath(path, f) + ":" + ModelManifest.Sha256File(f)).ToArray())
        : ModelManifest.Sha256File(path);

    static string Unzip(string reference, string zip, string dir)
    {
        try { ZipFile.ExtractToDirectory(zip, dir); } // refuses entries that would land outside dir
        catch (Exception e) when (e is InvalidDataException or IOException) { throw new SioException($"model: {reference} is not a readable zip ({e.Message})"); }
        return FindModelRoot(dir) ?? throw new SioException($"model: {reference} holds no model (a sio model folder with sio.json, a Hugging Face folder with config.json, or a llama2.c .bin)");
    }

    static string? FindModelRoot(string dir)
    {
        foreach (var d in new[] { dir }.Concat(Directory.EnumerateDirectories(dir, "*", SearchOption.AllDirectories)))
            if (File.Exists(Path.Combine(d, ModelManifest.FileName)) || File.Exists(Path.Combine(d, "config.json")) ||
                Directory.GetFiles(d, "*.bin").Any(f => !Path.GetFileName(f).StartsWith("tok"))) return d;
        return null;
    }
}
