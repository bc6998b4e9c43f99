using Sio.Speculative;

namespace Sio.Serving;

/// <summary>How a served model takes requests.</summary>
public sealed record ServeOptions
{
    /// <summary>Requests decoded at the same time (each on its own sequence).</summary>
    public int MaxConcurrent { get; init; } = 2;
    /// <summary>Requests waiting for a slot; beyond this the server answers 429.</summary>
    public int QueueCapacity { get; init; } = 32;
    public SpeculativeOptions Speculative { get; init; } = new();
    /// <summary>Chunked prefill: a prompt longer than this is prefilled this many tokens per decode step, so running
    /// requests keep streaming while a long prompt is read (0: a prompt is prefilled whole when admitted).</summary>
    public int PrefillChunkTokens { get; init; } = 256;

    public ServeOptions Validate()
    {
        if (MaxConcurrent < 1) throw new SioException($"--max-concurrent must be ≥ 1, got {MaxConcurrent}");
        if (PrefillChunkTokens < 0) throw new SioException($"--prefill-chunk must be ≥ 0, got {PrefillChunkTokens}");
        if (QueueCapacity < 0) throw new SioException($"--queue must be ≥ 0, got {QueueCapacity}");
        Speculative.Validate();
        return this;
    }
}
