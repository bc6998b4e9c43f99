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

    public bool Enabled => Drafter != "none";
    /// <summary>The drafter is a model (self-int4 or draft:DIR), whose session takes turns with the target's.</summary>
    public bool UsesDraftModel => Drafter == "self-int4" || Drafter.StartsWith("draft:", StringComparison.Ordinal);

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
        if (Drafter is not ("none" or "ngram" or "self-int4" or "datastore") && !Drafter.StartsWith("draft:") && !Drafter.StartsWith("datastore:"))
            throw new SioException($"--speculative must be none, ngram, self-int4, draft:DIR, datastore or datastore:FILE, got '{Drafter}'");
        if (Drafter is "draft:" or "datastore:") throw new SioException($"--speculative {Drafter} needs a path after the colon");
        return this;
    }
}
