namespace Sio.Speculative;

/// <summary>What drafting did for one request (or, added up, for many).</summary>
public sealed record SpeculativeStats
{
    public string Drafter { get; init; } = "none";
    public long Proposed { get; set; }
    public long Accepted { get; set; }
    /// <summary>Target forward passes after prefill (each emits the accepted drafts plus one token).</summary>
    public long TargetSteps { get; set; }
    public long Emitted { get; set; }
    public double TargetMs { get; set; }
    public double DraftMs { get; set; }
    public long DraftSteps { get; set; }
    /// <summary>Greedy near-ties decided after rebuilding the batch-computed part of the cache one token at a time.</summary>
    public long ExactReplays { get; set; }

    public double AcceptanceRate => Proposed > 0 ? (double)Accepted / Proposed : 0;
    /// <summary>Tokens emitted per target step: accepted drafts plus the target's own token.</summary>
    public double MeanAcceptedLength => TargetSteps > 0 ? (double)Emitted / TargetSteps : 0;
    public double MeanDraftLength => DraftSteps > 0 ? (double)Proposed / DraftSteps : 0;
    /// <summary>(1 − α^(k+1)) / (1 − α) for the mean draft length k: tokens per step if acceptances were independent.</summary>
    public double ExpectedAcceptedLength
    {
        get
        {
            double a = AcceptanceRate, k = MeanDraftLength;
            if (Proposed == 0) return 1;
            return a >= 0.999 ? k + 1 : (1 - Math.Pow(a, k + 1)) / (1 - a);
        }
    }

    public SpeculativeStats Add(SpeculativeStats o) => this with
    {
        Proposed = Proposed + o.Proposed,
        Accepted = Accepted + o.Accepted,
        TargetSteps = TargetSteps + o.TargetSteps,
        Emitted = Emitted + o.Emitted,
        TargetMs = TargetMs + o.TargetMs,
        DraftMs = DraftMs + o.DraftMs,
        DraftSteps = DraftSteps + o.DraftSteps,
        ExactReplays = ExactReplays + o.ExactReplays,
    };
}
