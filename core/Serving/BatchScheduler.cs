using System.Threading.Channels;
using Sio.Generation;
using Sio.Speculative;

namespace Sio.Serving;

/// <summary>
/// The engine's one thread: admits queued requests into free rows, reads long prompts a chunk per step, runs a lone
/// request with a draft model through its own <see cref="SpeculativeDecoder"/> (and moves it into its row when company
/// arrives), hands the decoding rows to <see cref="BatchStep"/>, and streams and finishes each request.
/// </summary>
sealed class BatchScheduler : IRowSink
{
    readonly InferenceEngine _engine;
    readonly Channel<GenerationJob> _queue;
    readonly BatchGenerator _batch;
    readonly BatchStep _step;
    readonly ModelDrafter? _modelDrafter;
    readonly ILearningDrafter? _learner;
    readonly string _drafterName;
    readonly SoloGate _solo = new();
    readonly EngineSlot?[] _slots;
    readonly bool[] _decoding;
    readonly Action<int> _active;

    public BatchScheduler(InferenceEngine engine, Channel<GenerationJob> queue, BatchGenerator batch, IDrafter? drafter, DraftVerifier verifier, Action<int> active)
    {
        (_engine, _queue, _batch, _active) = (engine, queue, batch, active);
        // drafters that keep no per-sequence state (prompt lookup, the datastore) serve every row; a draft model keeps a
        // cache of its own, so it drafts only for a request alone on the engine
        var batchDrafter = drafter is ModelDrafter ? null : drafter;
        _modelDrafter = drafter as ModelDrafter;
        _learner = batchDrafter as ILearningDrafter;
        _drafterName = drafter?.Name ?? "none";
        _step = new BatchStep(batch, batchDrafter, verifier, engine.Options.Speculative, engine.Metrics);
        _slots = new EngineSlot?[batch.Rows];
        _decoding = new bool[batch.Rows];
    }

    int Chunk => _engine.Options.PrefillChunkTokens;

    public void Run(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            Admit();
            if (_slots.Count(x => x is not null) > 1) foreach (var x in _slots) if (x is not null) x.Alone = false;
            StepSolo();
            PrefillChunks();
            int busy = 0;
            for (int r = 0; r < _slots.Length; r++) if (_decoding[r] = _slots[r] is { Prefilling: false, Solo: null }) busy++;
            if (busy > 0) _step.Run(_slots, _decoding, this);
            MeasureCache();
            if (busy > 0) continue;
            else if (_slots.All(x => x is null) && !WaitForWork(stop)) return; // else prompts still being read, or a solo request
        }
    }

    bool WaitForWork(CancellationToken stop)
    {
        try { _queue.Reader.WaitToReadAsync(stop).AsTask().Wait(stop); return true; }
        catch (Exception e) when (e is AggregateException or OperationCanceledException) { return false; }
    }

    /// <summary>Waiting requests into free rows: each prefilled (its first chunk), or, alone on an idle engine with a draft model, started on its own decoder.</summary>
    void Admit()
    {
        for (int r = 0; r < _slots.Length; r++)
        {
            if (_slots[r] is not null) continue;
            if (!_queue.Reader.TryRead(out var job)) break;
            if (job.Cancellation.IsCancellationRequested) { _engine.Metrics.Ended("abort"); job.Result.TrySetCanceled(); job.Pieces.Writer.TryComplete(); r--; continue; }
            EngineSlot slot;
            try { slot = Open(r, job); }
            catch (Exception e) { _engine.Metrics.Ended("error"); job.Result.TrySetException(e); job.Pieces.Writer.TryComplete(); r--; continue; }
            _slots[r] = slot;
            _active(+1);
            if (slot.Solo is { } decoder)
            {
                int first;
                try { first = decoder.Start(job.Prompt); }
                catch (Exception e) { Finish(r, null, e); continue; }
                slot.PrefillMs = slot.Clock.Elapsed.TotalMilliseconds;
                slot.Clock.Restart();
                Accept(r, first);
            }
            else if (!slot.Prefilling) Started(r);
        }
    }

    EngineSlot Open(int r, GenerationJob job)
    {
        var now = DateTime.UtcNow;
        job.MarkAdmitted();
        _engine.Metrics.Admitted(job.Age);
        ServingTraces.Past("queue", job.Trace, job.ArrivedUtc, now);
        var slot = new EngineSlot(job, _engine.Model, _drafterName).Prepared(_engine.Model);
        slot.PrefillSpan = ServingTraces.Step("prefill", job.Trace, now);
        slot.PrefillSpan?.SetTag("gen_ai.usage.input_tokens", job.Prompt.Count);
        if (_modelDrafter is not null && job.Options.Sampling is { AllowsDrafting: true, Json: null } && _slots.All(x => x is null) && _queue.Reader.Count == 0 && _solo.Choose())
        {
            slot.Solo = new SpeculativeDecoder(_engine.Model, _modelDrafter, job.Options.Sampling, _engine.Options.Speculative, _batch.Capacity);
            slot.Prefilled = job.Prompt.Count;
            return slot;
        }
        int first = Chunk > 0 ? Math.Min(Chunk, job.Prompt.Count) : job.Prompt.Count;
        _batch.Prefill(r, job.Prompt.Take(first).ToArray());
        slot.Prefilled = first;
        return slot;
    }

    /// <summary>The solo request: another step of its own while it is alone; into its batch row as soon as it is not.</summary>
    void StepSolo()
    {
        for (int r = 0; r < _slots.Length; r++)
        {
            if (_slots[r] is not { Solo: { } decoder } s) continue;
            if (_slots.Any(x => x is not null && x != s) || _queue.Reader.Count > 0)
            {
                try
                {
                    _batch.Prefill(r, s.Context.Take(s.Context.Count - 1).ToArray()); // the pending token stays pending
                    TakeSoloStats(s);
                    _engine.OnMovedToBatch();
                }
                catch (Exception e) { Finish(r, null, e); }
                continue;
            }
            IReadOnlyList<int> emitted;
            try { emitted = decoder.Step(s.Remaining); }
            catch (Exception e) { Finish(r, null, e); continue; }
            if (emitted.Count == 0) { Finish(r, "length", null); continue; }
            foreach (var t in emitted) { if (_slots[r] is null) break; Accept(r, t); }
        }
    }

    /// <summary>Chunked prefill: each prompt still being read takes one more chunk per step.</summary>
    void PrefillChunks()
    {
        for (int r = 0; r < _slots.Length; r++)
        {
            if (_slots[r] is not { Prefilling: true } s) continue;
            if (s.Job.Cancellation.IsCancellationRequested) { Finish(r, "cancelled", null); continue; }
            int n = Math.Min(Chunk, s.Job.Prompt.Count - s.Prefilled);
            try { _batch.Append(r, s.Job.Prompt.Skip(s.Prefilled).Take(n).ToArray()); }
            catch (Exception e) { Finish(r, null, e); continue; }
            s.Prefilled += n;
            if (!s.Prefilling) Started(r);
        }
    }

    /// <summary>The whole prompt is in: time the prefill and take the first token.</summary>
    void Started(int r)
    {
        var s = _slots[r]!;
        s.PrefillMs = s.Clock.Elapsed.TotalMilliseconds;
        s.Clock.Restart();
        Accept(r, () => s.Sampler.Sample(_batch.Logits(r)));
    }

    public bool Alive(int r) => _slots[r] is not null;

    public void FailAll(Exception e)
    {
        for (int r = 0; r < _slots.Length; r++) if (_slots[r] is not null) Finish(r, null, e);
    }

    /// <summary>One request's failure (a bad token id, a sampler error) ends that request, never the loop.</summary>
    public void Accept(int r, Func<int> next)
    {
        try { Accept(r, next()); }
        catch (Exception e) { if (_slots[r] is not null) Finish(r, null, e); }
    }

    /// <summary>A token for row r: stream it, or end the request (at a stop token or sequence, at once).</summary>
    void Accept(int r, int token)
    {
        var s = _slots[r]!;
        if (s.Job.Cancellation.IsCancellationRequested) { Finish(r, "cancelled", null); return; }
        if (s.Stops.Contains(token)) { Finish(r, "stop", null); return; }
        s.Output.Add(token);
        s.Context.Add(token);
        s.Sampler.Observe(token);
        if (s.Job.Logprobs is { } logprobs && s.Sampler.Last is { } lp) logprobs.Writer.TryWrite(lp);
        s.Speculative.Emitted++;
        Timed(s);
        var piece = s.Matcher.Feed(s.Stream.Decode(token));
        s.Text.Append(piece);
        if (piece.Length > 0) s.Job.Pieces.Writer.TryWrite(piece);
        if (s.Matcher.Stopped) { Finish(r, "stop", null); return; }
        if (s.Remaining <= 0 || (s.Solo?.Target.Length ?? _batch.Length(r)) + 1 > _batch.Capacity) { Finish(r, "length", null); return; }
        s.Pending = token;
    }

    /// <summary>A token's time: the first closes the prefill span and opens the decode span.</summary>
    void Timed(EngineSlot s)
    {
        double now = s.Clock.Elapsed.TotalMilliseconds;
        if (s.LastTokenMs < 0)
        {
            s.FirstTokenAge = s.Job.Age;
            _engine.Metrics.FirstToken(s.FirstTokenAge);
            var at = DateTime.UtcNow;
            ServingTraces.End(s.PrefillSpan, at);
            s.PrefillSpan = null;
            s.DecodeSpan = ServingTraces.Step("decode", s.Job.Trace, at);
        }
        else _engine.Metrics.NextToken((now - s.LastTokenMs) / 1000);
        s.LastTokenMs = now;
    }

    void TakeSoloStats(EngineSlot s)
    {
        if (s.Solo is not { } d) return;
        _engine.Metrics.Drafted(d.Stats.Proposed, d.Stats.Accepted);
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
        var s = _slots[r]!;
        _slots[r] = null;
        bool completed = error is null && reason is "stop" or "length";
        if (completed && s.Alone && s.Output.Count > 1) _solo.Observe(s.Solo is not null, s.Output.Count - 1, s.Clock.Elapsed.TotalMilliseconds);
        TakeSoloStats(s);
        _active(-1);
        var tail = s.Matcher.Feed(s.Stream.Flush()) + s.Matcher.Flush();
        if (tail.Length > 0) { s.Text.Append(tail); s.Job.Pieces.Writer.TryWrite(tail); }
        Measured(s, error is not null ? "error" : reason == "cancelled" ? "abort" : reason!);
        if (error is not null) s.Job.Result.TrySetException(error);
        else if (reason == "cancelled") s.Job.Result.TrySetCanceled();
        else s.Job.Result.TrySetResult(new GenerationResult(s.Job.Prompt, s.Output, s.Text.ToString(), reason!, s.PrefillMs, s.Clock.Elapsed.TotalMilliseconds, s.Speculative));
        if (completed) _learner?.Learn(s.Context);
        s.Job.Logprobs?.Writer.TryComplete();
        s.Job.Pieces.Writer.TryComplete();
    }

    /// <summary>The request's end in the metrics and its spans.</summary>
    void Measured(EngineSlot s, string reason)
    {
        double age = s.Job.Age;
        _engine.Metrics.Finished(reason, s.Job.Prompt.Count, s.Output.Count, age, s.Output.Count > 0 ? age - s.FirstTokenAge : 0);
        var now = DateTime.UtcNow;
        ServingTraces.End(s.PrefillSpan, now); // ended before its first token
        ServingTraces.End(s.DecodeSpan, now, ("gen_ai.usage.output_tokens", s.Output.Count), ("gen_ai.response.finish_reasons", new[] { reason }),
            ("sio.draft.proposed", s.Speculative.Proposed), ("sio.draft.accepted", s.Speculative.Accepted));
    }

    /// <summary>Tokens held in the cache over tokens allocated for it (read by the KV-cache gauge).</summary>
    public double KvCacheUsage => Volatile.Read(ref _kvUsage);
    double _kvUsage;

    void MeasureCache()
    {
        long held = 0;
        for (int r = 0; r < _slots.Length; r++) if (_slots[r] is { } s) held += s.Solo?.Target.Length ?? _batch.Length(r);
        Volatile.Write(ref _kvUsage, (double)held / ((long)_slots.Length * _batch.Capacity));
    }
}
