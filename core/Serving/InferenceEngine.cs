using System.Threading.Channels;
using Sio.Generation;
using Sio.Speculative;

namespace Sio.Serving;

/// <summary>
/// Runs requests against one model: a bounded queue in front of a fixed number of decode slots.
/// The slots are the rows of one <see cref="BatchGenerator"/> (continuous batching: a request joins
/// the running batch as soon as a row is free, is prefilled on its own, then decodes in the same
/// forward pass as every other row, and leaves the moment it ends). With prompt lookup or a datastore,
/// speculation runs inside the batch with per-row acceptance, and a controller per number of busy rows
/// plays the draft length that measures the most tokens per millisecond, 0 included, so speculation
/// turns itself down and off as batching saturates the machine. A draft model keeps a cache of its own,
/// so with one a request that arrives to an idle engine decodes through a speculative decoder of its own
/// (while that measures faster than decoding alone without it) and moves into its batch row, where it
/// decodes plainly, the moment another request arrives. Everything runs on one thread. A full queue refuses at once
/// (the server's 429); a cancelled request (its client went away) stops at the next step and frees
/// its slot; an exception fails only its own request.
/// </summary>
public sealed class InferenceEngine : IDisposable
{
    readonly Channel<GenerationJob> _queue;
    readonly Task[] _workers;
    readonly CancellationTokenSource _stop = new();
    int _active;
    readonly BatchGenerator _batch;
    readonly IDrafter? _drafter;

    /// <param name="name">The model id clients see (the metrics' model_name); default the model folder's name.</param>
    public InferenceEngine(Model model, ServeOptions options, string? name = null)
    {
        Model = model;
        Options = options.Validate();
        Name = name ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(model.Folder));
        Metrics = new ServingMetrics(Name, () => Active, () => Queued, () => _scheduler?.KvCacheUsage ?? 0);
        _queue = Channel.CreateBounded<GenerationJob>(new BoundedChannelOptions(Math.Max(1, options.QueueCapacity)) { FullMode = BoundedChannelFullMode.Wait });
        // built here, not in the workers, so that a bad drafter or a cache too large for memory fails the load loudly
        _batch = new BatchGenerator(model, options.MaxConcurrent);
        try { _drafter = DrafterFactory.Create(options.Speculative, model); }
        catch { _batch.Dispose(); throw; }
        // measured at load, not in the first request's time
        var verifier = new DraftVerifier(_drafter is null ? SpeculativeDecoder.TieMargin : ExactnessMargin.For(model));
        _scheduler = new BatchScheduler(this, _queue, _batch, _drafter, verifier, d => Interlocked.Add(ref _active, d));
        _workers = [Task.Factory.StartNew(() => _scheduler.Run(_stop.Token), TaskCreationOptions.LongRunning)];
    }

    readonly BatchScheduler? _scheduler;
    public Model Model { get; }
    public string Name { get; }
    public ServeOptions Options { get; }
    public ServingMetrics Metrics { get; }
    public int Active => Volatile.Read(ref _active);
    public int Queued => _queue.Reader.Count;

    /// <summary>Queues a job, or returns false when the queue is full.</summary>
    public bool TryEnqueue(GenerationJob job) => Options.QueueCapacity > 0 || Active < Options.MaxConcurrent ? _queue.Writer.TryWrite(job) : false;

    /// <summary>How many times a lone request with a draft model moved into its batch row because another request arrived.</summary>
    public int MovesToBatch => Volatile.Read(ref _movesToBatch);
    int _movesToBatch;
    internal void OnMovedToBatch() => Interlocked.Increment(ref _movesToBatch);

    public void Dispose()
    {
        _queue.Writer.TryComplete();
        _stop.Cancel();
        try { Task.WaitAll(_workers, TimeSpan.FromSeconds(10)); } catch (AggregateException) { }
        _stop.Dispose();
        // whatever never got a slot is answered, not left hanging
        while (_queue.Reader.TryRead(out var job)) { job.Result.TrySetCanceled(); job.Pieces.Writer.TryComplete(); }
        _drafter?.Dispose();
        _batch.Dispose();
        Metrics.Dispose();
    }
}
