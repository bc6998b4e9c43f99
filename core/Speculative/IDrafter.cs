using Sio.Generation;

namespace Sio.Speculative;

/// <summary>Tokens a drafter proposes, with the distribution each was drawn from (null: chosen deterministically).</summary>
public sealed record DraftProposal(int[] Tokens, float[][]? Distributions)
{
    public static readonly DraftProposal None = new([], null);
}

/// <summary>
/// Proposes tokens that continue a sequence; the target verifies them. A drafter keeps whatever state
/// it needs (a KV cache) and re-syncs it from the context it is given, so rejected drafts are simply
/// rewound.
/// </summary>
public interface IDrafter : IDisposable
{
    string Name { get; }
    /// <param name="context">Every token so far (prompt and output), the one being verified last.</param>
    /// <param name="k">Most tokens to propose.</param>
    /// <param name="sampler">Null for greedy drafting; otherwise draw from it (and report the distributions).</param>
    DraftProposal Draft(IReadOnlyList<int> context, int k, Sampler? sampler);
}

/// <summary>A drafter that improves from the sequences the target completes.</summary>
public interface ILearningDrafter : IDrafter
{
    void Learn(IReadOnlyList<int> sequence);
}
