using System.Diagnostics;
using System.Threading.Channels;
using Sio.Generation;

namespace Sio.Serving;

/// <summary>One request: its prompt and options, where its tokens go, and how it ends.</summary>
public sealed class GenerationJob(IReadOnlyList<int> prompt, GenerationOptions options, CancellationToken cancellation)
{
    public IReadOnlyList<int> Prompt { get; } = prompt;
    public GenerationOptions Options { get; } = options;
    public CancellationToken Cancellation { get; } = cancellation;
    /// <summary>When the request arrived (a <see cref="Stopwatch"/> timestamp, and the wall clock for its spans): its
    /// queue time, time to first token and end-to-end latency run from here.</summary>
    public long Arrived { get; } = Stopwatch.GetTimestamp();
    public DateTime ArrivedUtc { get; } = DateTime.UtcNow;
    /// <summary>The span of the request this job serves (the caller's current one), the parent of the engine's spans for it.</summary>
    public ActivityContext Trace { get; } = Activity.Current?.Context ?? default;
    /// <summary>Text pieces as they are decoded, cut at the first stop sequence (completed when the job ends).</summary>
    public Channel<string> Pieces { get; } = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    /// <summary>Each emitted token's log-probability, in order, when the request asked for logprobs (written before the token's piece).</summary>
    public Channel<TokenLogprob>? Logprobs { get; } = options.Sampling.Logprobs is null ? null
        : Channel.CreateUnbounded<TokenLogprob>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    public TaskCompletionSource<GenerationResult> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Seconds since the request arrived.</summary>
    public double Age => Stopwatch.GetElapsedTime(Arrived).TotalSeconds;

    /// <summary>When the engine gave the request a row (a <see cref="Stopwatch"/> timestamp); null while it is queued.</summary>
    public long? Admitted { get; private set; }

    internal void MarkAdmitted() => Admitted = Stopwatch.GetTimestamp();
}
