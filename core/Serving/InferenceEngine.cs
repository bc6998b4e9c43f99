using System.Threading.Channels;
using Sio.Generation;
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

    public ServeOptions Validate()
    {
        if (MaxConcurrent < 1) throw new SioException($"--max-concurrent must be ≥ 1, got {MaxConcurrent}");
        if (QueueCapacity < 0) throw new SioException($"--queue must be ≥ 0, got {QueueCapacity}");
        Speculative.Validate();
        return this;
    }
}

/// <summary>One request: its prompt and options, where its tokens go, and how it ends.</summary>
public sealed class GenerationJob(IReadOnlyList<int> prompt, GenerationOptions options, CancellationToken cancellation)
{
    public IReadOnlyList<int> Prompt { get; } = prompt;
    public GenerationOptions Options { get; } = options;
    public CancellationToken Cancellation { get; } = cancellation;
    /// <summary>Text pieces as they are decoded (completed when the job ends).</summary>
    public Channel<string> Pieces { get; } = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    public TaskCompletionSource<GenerationResult> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>
/// Runs requests against one model: a bounded queue in front of a fixed number of decode slots.
/// A full queue refuses at once (the server's 429); a cancelled request (its client went away)
/// stops at the next step and frees its slot; an exception fails only its own request.
/// </summary>
public sealed class InferenceEngine : IDisposable
{
    readonly Channel<GenerationJob> _queue;
    readonly Task[] _workers;
    readonly CancellationTokenSource _stop = new();
    int _active;

    public InferenceEngine(Model model, ServeOptions options)
    {
        Model = model;
        Options = options.Validate();
        _queue = Channel.CreateBounded<GenerationJob>(new BoundedChannelOptions(Math.Max(1, options.QueueCapacity)) { FullMode = BoundedChannelFullMode.Wait });
        _workers = Enumerable.Range(0, options.MaxConcurrent).Select(_ => Task.Factory.StartNew(Work, TaskCreationOptions.LongRunning).Unwrap()).ToArray();
    }

    public Model Model { get; }
    public ServeOptions Options { get; }
    public int Active => Volatile.Read(ref _active);
    public int Queued => _queue.Reader.Count;

    /// <summary>Queues a job, or returns false when the queue is full.</summary>
    public bool TryEnqueue(GenerationJob job) => Options.QueueCapacity > 0 || Active < Options.MaxConcurrent ? _queue.Writer.TryWrite(job) : false;

    async Task Work()
    {
        using var drafter = DrafterFactory.Create(Options.Speculative, Model);
        await foreach (var job in _queue.Reader.ReadAllAsync(_stop.Token).ConfigureAwait(false))
        {
            if (job.Cancellation.IsCancellationRequested) { job.Result.TrySetCanceled(); job.Pieces.Writer.TryComplete(); continue; }
            Interlocked.Increment(ref _active);
            try
            {
                var r = TextGeneration.Generate(Model, job.Prompt, job.Options with { Speculative = Options.Speculative },
                    (_, piece) => { if (piece.Length > 0) job.Pieces.Writer.TryWrite(piece); }, job.Cancellation, drafter);
                job.Result.TrySetResult(r);
            }
            catch (OperationCanceledException) { job.Result.TrySetCanceled(); }
            catch (Exception e) { job.Result.TrySetException(e); }
            finally
            {
                job.Pieces.Writer.TryComplete();
                Interlocked.Decrement(ref _active);
            }
        }
    }

    public void Dispose()
    {
        _queue.Writer.TryComplete();
        _stop.Cancel();
        try { Task.WaitAll(_workers, TimeSpan.FromSeconds(10)); } catch (AggregateException) { }
        _stop.Dispose();
    }
}
