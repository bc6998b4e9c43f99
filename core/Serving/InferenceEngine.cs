using System.Threading.Channels;
using Sio.Generation;
using Sio.Speculative;
using Sio.Tokenization;

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
    readonly float _margin; // the near-tie margin of speculative verification (ExactnessMargin)

    public InferenceEngine(Model model, ServeOptions options)
    {
        Model = model;
        Options = options.Validate();
        Metrics = new ServingMetrics(() => Queued, () => Active);
        _queue = Channel.CreateBounded<GenerationJob>(new BoundedChannelOptions(Math.Max(1, options.QueueCapacity)) { FullMode = BoundedChannelFullMode.Wait });
        // built here, not in the workers, so that a bad drafter or a cache too large for memory fails the load loudly
        _batch = new BatchGenerator(model, options.MaxConcurrent);
        try { _drafter = DrafterFactory.Create(options.Speculative, model); }
        catch { _batch.Dispose(); throw; }
        // measured at load, not in the first request's time
        _margin = _drafter is null ? SpeculativeDecoder.TieMargin : ExactnessMargin.For(model);
        _workers = [Task.Factory.StartNew(BatchLoop, TaskCreationOptions.LongRunning)];
    }

    public Model Model { get; }
    public ServeOptions Options { get; }
    public ServingMetrics Metrics { get; }
    public int Active => Volatile.Read(ref _active);
    public int Queued => _queue.Reader.Count;

    /// <summary>Queues a job, or returns false when the queue is full.</summary>
    public bool TryEnqueue(GenerationJob job) => Options.QueueCapacity > 0 || Active < Options.MaxConcurrent ? _queue.Writer.TryWrite(job) : false;

    /// <summary>A request in a batch row: its sampler, output so far and streaming decoder.</summary>
    sealed class Slot(GenerationJob job, Model model, string drafter)
    {
        public GenerationJob Job { get; } = job;
        public Sampler Sampler { get; } = new(job.Options.Sampling);
        public List<int> Output { get; } = new();
        public System.Text.StringBuilder Text { get; } = new();
        public TokenStream Stream { get; } = model.Tokenizer.CreateStream(job.Prompt[^1]);
        public HashSet<int> Stops { get; } = (job.Options.IgnoreModelStopTokens ? [] : model.StopTokens).Concat(job.Options.StopTokens).ToHashSet();
        public System.Diagnostics.Stopwatch Clock { get; } = System.Diagnostics.Stopwatch.StartNew();
        public double PrefillMs { get; set; }
        public double LastTokenMs { get; set; } = -1;
        public int Pending { get; set; }
        /// <summary>Prompt and output so far (what a drafter continues).</summary>
        public List<int> Context { get; } = [.. job.Prompt];
        public Speculative.SpeculativeStats Speculative { get; } = new() { Drafter = drafter };
        /// <summary>The last verification met a near-tie: the next step for this row is a plain one.</summary>
        public bool PlainNext { get; set; }
        /// <summary>A request alone on the engine with a draft model decodes through its own speculative decoder (and
        /// moves into its batch row when company arrives).</summary>
        public SpeculativeDecoder? Solo { get; set; }
        /// <summary>No other request shared the engine during this one (its speed says what decoding alone costs).</summary>
        public bool Alone { get; set; } = true;
        /// <summary>Prompt tokens already in the cache; the row decodes once the whole prompt is in.</summary>
        public int Prefilled { get; set; }
        public bool Prefilling => Prefilled < Job.Prompt.Count;
    }

    void BatchLoop()
    {
        int rows = Options.MaxConcurrent;
        var batch = _batch;
        // drafters that keep no per-sequence state (prompt lookup, the datastore) serve every row; a draft model keeps a
        // cache of its own, so it drafts only for a request alone on the engine
        var batchDrafter = _drafter is ModelDrafter ? null : _drafter;
        var modelDrafter = _drafter as ModelDrafter;
        var solo = new SoloGate();
        int chunk = Options.PrefillChunkTokens;
        var controllers = Enumerable.Range(0, rows).Select(_ => new DraftLengthController(Options.Speculative.DraftTokens, Options.Speculative.MaxAdaptiveDraftTokens)).ToArray();
        var slots = new Slot?[rows];
        var active = new bool[rows];
        var pending = new int[rows];
        while (!_stop.IsCancellationRequested)
        {
            // admit waiting requests into free rows
            for (int r = 0; r < rows; r++)
            {
                if (slots[r] is not null) continue;
                if (!_queue.Reader.TryRead(out var job)) break;
                if (job.Cancellation.IsCancellationRequested) { job.Result.TrySetCanceled(); job.Pieces.Writer.TryComplete(); r--; continue; }
                Slot slot;
                try
                {
                    slot = new Slot(job, Model, _drafter?.Name ?? "none");
                    // alone on an idle engine with a draft model: its own speculative decoder, when that has paid so far
                    if (modelDrafter is not null && slots.All(x => x is null) && _queue.Reader.Count == 0 && solo.Choose())
                    {
                        slot.Solo = new SpeculativeDecoder(Model, modelDrafter, job.Options.Sampling, Options.Speculative, batch.Capacity);
                        slot.Prefilled = job.Prompt.Count;
                    }
                    else
                    {
                        int first = chunk > 0 ? Math.Min(chunk, job.Prompt.Count) : job.Prompt.Count;
                        batch.Prefill(r, job.Prompt.Take(first).ToArray());
                        slot.Prefilled = first;
                    }
                }
                catch (Exception e) { Metrics.Finished("error"); job.Result.TrySetException(e); job.Pieces.Writer.TryComplete(); r--; continue; }
                slots[r] = slot;
                Interlocked.Increment(ref _active);
                if (slot.Solo is { } decoder)
                {
                    int firstToken;
                    try { firstToken = decoder.Start(job.Prompt); }
                    catch (Exception e) { Finish(r, null, e); continue; }
                    slot.PrefillMs = slot.Clock.Elapsed.TotalMilliseconds;
                    slot.Clock.Restart();
                    Accept(r, firstToken);
                }
                else if (!slot.Prefilling) Started(r);
            }
            if (slots.Count(x => x is not null) > 1) foreach (var x in slots) if (x is not null) x.Alone = false;
            // the solo request: another step of its own while it is alone; into its batch row as soon as it is not
            for (int r = 0; r < rows; r++)
            {
                if (slots[r] is not { Solo: { } decoder } s) continue;
                if (slots.Any(x => x is not null && x != s) || _queue.Reader.Count > 0)
                {
                    try
                    {
                        batch.Prefill(r, s.Context.Take(s.Context.Count - 1).ToArray()); // the pending token stays pending
                        TakeSoloStats(s);
                    }
                    catch (Exception e) { Finish(r, null, e); }
                    continue;
                }
                IReadOnlyList<int> emitted;
                try { emitted = decoder.Step(s.Job.Options.MaxTokens - s.Output.Count); }
                catch (Exception e) { Finish(r, null, e); continue; }
                if (emitted.Count == 0) { Finish(r, "length", null); continue; }
                foreach (var t in emitted) { if (slots[r] is null) break; Accept(r, t); }
            }
            // chunked prefill: each prompt still being read takes one more chunk per step
            for (int r = 0; r < rows; r++)
            {
                if (slots[r] is not { Prefilling: true } s) continue;
                if (s.Job.Cancellation.IsCancellationRequested) { Finish(r, "cancelled", null); continue; }
                int n = Math.Min(chunk, s.Job.Prompt.Count - s.Prefilled);
                try { batch.Append(r, s.Job.Prompt.Skip(s.Prefilled).Take(n).ToArray()); }
                catch (Exception e) { Finish(r, null, e); continue; }
                s.Prefilled += n;
                if (!s.Prefilling) Started(r);
            }
            int activeRows = 0;
            for (int r = 0; r < rows; r++) { active[r] = slots[r] is { Prefilling: false, Solo: null }; if (active[r]) { activeRows++; pending[r] = slots[r]!.Pending; } }
            if (activeRows == 0)
            {
                if (slots.Any(x => x is not null)) continue; // prompts still being read, or a solo request
                try { _queue.Reader.WaitToReadAsync(_stop.Token).AsTask().Wait(); }
                catch (AggregateException) { return; }
                continue;
            }
            if (batchDrafter is null) PlainStep();
            else SpeculativeStep(activeRows);
        }

        void PlainStep()
        {
            try { batch.Step(pending, active); }
            catch (Exception e)
            {
                for (int r = 0; r < rows; r++) if (slots[r] is not null) Finish(r, null, e);
                return;
            }
            for (int r = 0; r < rows; r++)
                if (active[r] && slots[r] is { } s) SafeAccept(r, () => s.Sampler.Sample(batch.Logits(r)));
        }

        // Speculation under batching: every greedy row drafts up to k tokens and keeps its own accepted prefix. A row with
        // drafts is verified in a pass of its own (ONNX Runtime's GroupQueryAttention takes several new tokens over a past
        // only at batch 1), the others step together. k comes from a controller per number of busy rows that measures the
        // batch's tokens per millisecond for each k (0 included): when one batched pass already saturates the machine,
        // k = 0 wins and the step is a plain batched one.
        void SpeculativeStep(int activeRows)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var controller = controllers[Math.Min(activeRows, controllers.Length) - 1];
            int k = controller.Next();
            var feeds = new int[]?[rows];
            var drafts = new int[]?[rows];
            int drafted = 0, played = 0;
            for (int r = 0; r < rows; r++)
            {
                if (!active[r] || slots[r] is not { } s) continue;
                int room = Math.Min(batch.Capacity - batch.Length(r) - 1, s.Job.Options.MaxTokens - s.Output.Count - 1);
                int kr = s.Sampler.Options.IsGreedy && !s.PlainNext ? Math.Min(k, room) : 0;
                played = Math.Max(played, kr);
                var d = kr > 0 ? batchDrafter.Draft(s.Context, kr, null).Tokens : [];
                if (d.Length > kr) d = d[..kr];
                drafts[r] = d;
                drafted += d.Length;
                feeds[r] = [s.Pending, .. d];
            }
            int[] before = new int[rows];
            var plain = new bool[rows];
            bool anyPlain = false;
            for (int r = 0; r < rows; r++)
            {
                if (!active[r]) continue;
                before[r] = batch.Length(r);
                plain[r] = drafts[r]!.Length == 0;
                anyPlain |= plain[r];
            }
            try
            {
                // rows with drafts are verified one by one (several new tokens over a past run at batch 1); the rest step together
                for (int r = 0; r < rows; r++) if (active[r] && !plain[r]) batch.Append(r, feeds[r]!);
                if (anyPlain) batch.Step(pending, plain);
            }
            catch (Exception e)
            {
                for (int r = 0; r < rows; r++) if (slots[r] is not null) Finish(r, null, e);
                return;
            }
            int emitted = 0, acceptedAll = 0;
            for (int r = 0; r < rows; r++)
            {
                if (!active[r] || slots[r] is not { } s) continue;
                var d = drafts[r]!;
                s.PlainNext = false;
                if (d.Length == 0)
                {
                    emitted++;
                    SafeAccept(r, () => s.Sampler.Sample(batch.Logits(r)));
                    continue;
                }
                int accepted = 0, next = -1;
                bool tie = false;
                for (int i = 0; i <= d.Length && next < 0 && !tie; i++)
                {
                    var logits = batch.LogitsAt(r, i);
                    int t = Sampler.ArgMax(logits);
                    if (SpeculativeDecoder.NearTie(logits, t, _margin)) tie = true;
                    else if (i < d.Length && t == d[i]) accepted++;
                    else next = t;
                }
                s.Speculative.DraftSteps++;
                s.Speculative.Proposed += d.Length;
                s.Speculative.Accepted += accepted;
                acceptedAll += accepted;
                // keep the entries of the pending token and the accepted drafts; at a near-tie, stop before it and let a
                // plain step decide that token as plain decoding would
                batch.RewindTo(r, before[r] + (tie ? accepted : accepted + 1));
                for (int i = 0; i < accepted && slots[r] is not null; i++) { emitted++; Accept(r, d[i]); }
                if (slots[r] is null) continue;
                if (tie) { slots[r]!.PlainNext = true; continue; }
                emitted++;
                SafeAccept(r, () => next);
            }
            Metrics.Drafted(drafted, acceptedAll);
            controller.Observe(played > 0 ? k : 0, emitted, clock.Elapsed.TotalMilliseconds);
        }

        // the whole prompt is in: time the prefill and take the first token
        void Started(int r)
        {
            var s = slots[r]!;
            s.PrefillMs = s.Clock.Elapsed.TotalMilliseconds;
            s.Clock.Restart();
            SafeAccept(r, () => s.Sampler.Sample(batch.Logits(r)));
        }

        // one request's failure (a bad token id, a sampler error) ends that request, never the loop
        void SafeAccept(int r, Func<int> next)
        {
            try { Accept(r, next()); }
            catch (Exception e) { if (slots[r] is not null) Finish(r, null, e); }
        }

        // a token for row r: stream it, or end the request
        void Accept(int r, int token)
        {
            var s = slots[r]!;
            if (s.Job.Cancellation.IsCancellationRequested) { Finish(r, "cancelled", null); return; }
            if (s.Stops.Contains(token)) { Finish(r, "stop", null); return; }
            s.Output.Add(token);
            s.Context.Add(token);
            s.Speculative.Emitted++;
            double now = s.Clock.Elapsed.TotalMilliseconds;
            if (s.LastTokenMs < 0) Metrics.FirstToken(s.PrefillMs + now); else Metrics.NextToken(now - s.LastTokenMs);
            s.LastTokenMs = now;
            var piece = s.Stream.Decode(token);
            s.Text.Append(piece);
            if (piece.Length > 0) s.Job.Pieces.Writer.TryWrite(piece);
            if (s.Output.Count >= s.Job.Options.MaxTokens || (s.Solo?.Target.Length ?? batch.Length(r)) + 1 > batch.Capacity) { Finish(r, "length", null); return; }
            s.Pending = token;
        }

        void TakeSoloStats(Slot s)
        {
            if (s.Solo is not { } d) return;
            Metrics.Drafted(d.Stats.Proposed, d.Stats.Accepted);
            s.Speculative.Proposed += d.Stats.Proposed;
            s.Speculative.Accepted += d.Stats.Accepted;
            s.Speculative.DraftSteps += d.Stats.DraftSteps;
            s.Speculative.TargetSteps += d.Stats.TargetSteps;
            s.Alone = false; // it had company before the end
            d.Dispose();
            s.Solo = null;
        }

        void Finish(int r, string? reason, Exception? error)
        {
            var s = slots[r]!;
            slots[r] = null;
            if (error is null && reason is "stop" or "length" && s.Alone && s.Output.Count > 1)
                solo.Observe(s.Solo is not null, s.Output.Count - 1, s.Clock.Elapsed.TotalMilliseconds);
            TakeSoloStats(s);
            Interlocked.Decrement(ref _active);
            var tail = s.Stream.Flush();
            if (tail.Length > 0) { s.Text.Append(tail); s.Job.Pieces.Writer.TryWrite(tail); }
            Metrics.Finished(error is not null ? "error" : reason!);
            if (error is not null) s.Job.Result.TrySetException(error);
            else if (reason == "cancelled") s.Job.Result.TrySetCanceled();
            else s.Job.Result.TrySetResult(new GenerationResult(s.Job.Prompt, s.Output, s.Text.ToString(), reason!, s.PrefillMs, s.Clock.Elapsed.TotalMilliseconds,
                s.Speculative));
            if (error is null && reason is "stop" or "length" && batchDrafter is ILearningDrafter learner) learner.Learn(s.Context);
            s.Job.Pieces.Writer.TryComplete();
        }
    }

    /// <summary>
    /// Whether a request alone on the engine should decode with the draft model: tokens per millisecond of whole
    /// requests decoded alone, with and without it (each tried first, the loser re-tried now and then).
    /// </summary>
    sealed class SoloGate
    {
        readonly double[] _tokens = new double[2], _ms = new double[2];
        readonly int[] _n = new int[2];
        int _since;

        public bool Choose()
        {
            if (_n[1] < 2) return true;
            if (_n[0] < 2) return false;
            bool soloWins = _tokens[1] / _ms[1] >= _tokens[0] / _ms[0];
            return ++_since % 32 == 0 ? !soloWins : soloWins; // the loser is re-tried now and then: acceptance can change
        }

        public void Observe(bool usedSolo, int tokens, double ms)
        {
            int a = usedSolo ? 1 : 0;
            _n[a]++;
            _tokens[a] = _tokens[a] * 0.9 + tokens;
            _ms[a] = _ms[a] * 0.9 + ms;
        }
    }

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
