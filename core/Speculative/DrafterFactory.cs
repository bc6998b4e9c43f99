using Sio.Generation;
using Sio.Quantization;

namespace Sio.Speculative;

/// <summary>Builds the drafter a <see cref="DrafterSpec"/> names.</summary>
public static class DrafterFactory
{
    /// <summary>Where the int4 self-draft is cached: the model folder's .sio/, or, when the model folder is read-only, $SIO_HOME/cache.</summary>
    public static string SelfDraftFolder(Model target)
    {
        var inside = Path.Combine(target.Folder, Artifacts.OutputFolder.RuntimeCache, "self-int4");
        if (File.Exists(Path.Combine(inside, Models.ModelManifest.FileName))) return inside;
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(inside)!);
            var probe = Path.Combine(Path.GetDirectoryName(inside)!, $".probe-{Guid.NewGuid():N}");
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
            return inside;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            var key = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(Path.GetFullPath(target.Folder))))[..16];
            return Path.Combine(Artifacts.SioHome.Path, "cache", "self-int4", key);
        }
    }

    /// <summary>A draft model spins only within its runs: it takes turns with the target (see <see cref="ModelOptions.StopSpinningAfterRun"/>).</summary>
    static ModelOptions DraftOptions(ModelOptions? o) => (o ?? new ModelOptions()) with { StopSpinningAfterRun = true };

    public static IDrafter? Create(SpeculativeOptions options, Model target, ModelOptions? modelOptions = null, IProgress<string>? progress = null)
    {
        var spec = options.Validate().Spec;
        switch (spec.Kind)
        {
            case DrafterKind.None: return null;
            case DrafterKind.Ngram: return new NgramDrafter();
            case DrafterKind.Datastore when spec.Path is null: return new DatastoreDrafter([]);
            case DrafterKind.SelfInt4:
                var folder = SelfDraftFolder(target);
                if (target.Manifest.Dtype != "float32")
                    throw new SioException($"--speculative self-int4 drafts with the int4 copy of a float32 target; {target.Folder} is already {target.Manifest.Dtype}");
                if (!File.Exists(Path.Combine(folder, Models.ModelManifest.FileName)))
                {
                    progress?.Report("building the int4 self-draft");
                    Quantizer.Run(target.Folder, folder, new QuantizationConfig { Method = "rtn", AccuracyLevel = 4, LmHead = "int8" });
                }
                return new ModelDrafter(Model.Load(folder, DraftOptions(modelOptions)), target, "self-int4", ownsModel: true);
            case DrafterKind.Datastore:
                var file = spec.Path!;
                var data = Evaluation.DatasetReader.Read(file);
                var sequences = data.Records.Select(r => (IReadOnlyList<int>)target.Tokenizer.Encode(r.IsPromptResponse ? r.Prompt + r.Response : r.Text!));
                return new DatastoreDrafter(sequences, spec.At(Path.GetFileName(file)).ToString());
            default:
                var dir = spec.Path!;
                var draft = Model.Load(dir, DraftOptions(modelOptions));
                try { return new ModelDrafter(draft, target, spec.At(Path.GetFileName(Path.GetFullPath(dir).TrimEnd('/'))).ToString(), ownsModel: true); }
                catch { draft.Dispose(); throw; }
        }
    }
}
