namespace Sio.Speculative;

/// <summary>The kinds of drafter sio has.</summary>
public enum DrafterKind
{
    /// <summary>No drafter: plain decoding.</summary>
    None,
    /// <summary>Prompt lookup: n-grams of the context itself.</summary>
    Ngram,
    /// <summary>An int4 round-to-nearest copy of a float32 target, built and cached on first use.</summary>
    SelfInt4,
    /// <summary>Retrieval from sequences: learned from served outputs, and seeded from a dataset when <see cref="DrafterSpec.Path"/> is given.</summary>
    Datastore,
    /// <summary>A draft model: a model folder (or, in the pipeline, an imported model artifacts/models/KEY).</summary>
    DraftModel,
}

/// <summary>
/// A drafter named once and parsed once: none, ngram, self-int4, datastore, datastore:FILE or draft:MODEL. Its string
/// form (<see cref="ToString"/>) is what options, requests and manifests carry; everything that acts on a drafter reads
/// this record instead of testing prefixes.
/// </summary>
public sealed record DrafterSpec(DrafterKind Kind, string? Path = null)
{
    public static readonly DrafterSpec None = new(DrafterKind.None);

    public const string Forms = "none, ngram, self-int4, datastore, datastore:FILE or draft:DIR";

    /// <summary>Parses a drafter's string form; <paramref name="field"/> names the option or field in the error.</summary>
    public static DrafterSpec Parse(string? text, string field = "--speculative")
    {
        var (name, path) = text?.Split(':', 2) is [var n, var p] ? (n, p) : (text ?? "", null);
        DrafterKind? kind = name switch
        {
            "none" => DrafterKind.None,
            "ngram" => DrafterKind.Ngram,
            "self-int4" => DrafterKind.SelfInt4,
            "datastore" => DrafterKind.Datastore,
            "draft" => DrafterKind.DraftModel,
            _ => null,
        };
        if (kind is null) throw new SioException($"{field} must be {Forms}, got '{text}'");
        if (path is not null && kind is not (DrafterKind.Datastore or DrafterKind.DraftModel)) throw new SioException($"{field}: {name} takes no ':' argument, got '{text}'");
        if (path == "" || (kind == DrafterKind.DraftModel && path is null)) throw new SioException($"{field} {name}: needs a path after the colon");
        return new DrafterSpec(kind.Value, path);
    }

    /// <summary>The drafter is a model (self-int4 or draft:DIR), whose session takes turns with the target's.</summary>
    public bool UsesDraftModel => Kind is DrafterKind.SelfInt4 or DrafterKind.DraftModel;

    /// <summary>The same drafter at another path (a reference resolved to a local file or folder).</summary>
    public DrafterSpec At(string path) => this with { Path = path };

    public override string ToString() => Kind switch
    {
        DrafterKind.None => "none",
        DrafterKind.Ngram => "ngram",
        DrafterKind.SelfInt4 => "self-int4",
        DrafterKind.Datastore => Path is null ? "datastore" : $"datastore:{Path}",
        _ => $"draft:{Path}",
    };
}
