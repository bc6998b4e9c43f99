namespace Sio.Speculative;

/// <summary>Which drafter and how many tokens it proposes per step.</summary>
public sealed record SpeculativeOptions
{
    public const int MaxDraftTokens = 32;

    /// <summary>none, ngram, self-int4, draft:DIR, datastore (learns from served outputs) or datastore:FILE (also seeded from a dataset).</summary>
    public string Drafter { get; init; } = "none";
    /// <summary>A fixed draft length, or null for adaptive (up on high acceptance, down on low, off when it does not pay).</summary>
    public int? DraftTokens { get; init; }
    /// <summary>The longest draft adaptive mode tries.</summary>
    public int MaxAdaptiveDraftTokens { get; init; } = 8;

    /// <summary>The drafter, parsed (<see cref="Drafter"/> is its string form).</summary>
    public DrafterSpec Spec => DrafterSpec.Parse(Drafter);
    public bool Enabled => Spec.Kind != DrafterKind.None;
    /// <summary>The drafter is a model (self-int4 or draft:DIR), whose session takes turns with the target's.</summary>
    public bool UsesDraftModel => Spec.UsesDraftModel;

    /// <summary>Parses "--draft-tokens K|auto".</summary>
    public static int? ParseDraftTokens(string? value)
    {
        if (value is null || value == "auto") return null;
        if (!int.TryParse(value, out var k)) throw new SioException($"--draft-tokens must be a number from 1 to {MaxDraftTokens} or 'auto', got '{value}'");
        if (k < 1 || k > MaxDraftTokens) throw new SioException($"--draft-tokens must be from 1 to {MaxDraftTokens}, got {k}");
        return k;
    }

    public SpeculativeOptions Validate()
    {
        if (DraftTokens is int k && (k < 1 || k > MaxDraftTokens)) throw new SioException($"draft tokens must be from 1 to {MaxDraftTokens}, got {k}");
        DrafterSpec.Parse(Drafter);
        return this;
    }
}
