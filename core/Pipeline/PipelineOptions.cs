using Sio.Artifacts;
using Sio.Generation;

namespace Sio.Pipeline;

/// <summary>Where a pipeline keeps its data: the store, a local work folder, and what may be named.</summary>
public sealed record PipelineOptions
{
    public required IObjectStore Store { get; init; }
    /// <summary>Local folder where artifacts are materialized and built.</summary>
    public required string WorkDir { get; init; }
    /// <summary>Whether requests may name local paths (the self-host and the CLI) or only uploads/NAME (Azure).</summary>
    public bool AllowLocalPaths { get; init; }
    /// <summary>Largest upload accepted, in bytes.</summary>
    public long MaxUploadBytes { get; init; } = 8L << 30;
    public ModelOptions ModelOptions { get; init; } = new();
}
