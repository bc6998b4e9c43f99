using System.Diagnostics;
using Sio.Generation;
using Sio.Speculative;

namespace Sio.Serving;

/// <summary>
/// One decode step of the rows that are decoding: a plain batched step, or, with a drafter that serves every row
/// (prompt lookup, the datastore), speculation inside the batch. Every greedy row drafts up to k tokens and keeps what
/// <see cref="DraftVerifier"/> accepts; a row with drafts is verified in a pass of its own (ONNX Runtime's
/// GroupQueryAttention takes several new tokens over a past only at batch 1), the others step together. k comes from a
/// controller per number of busy rows that measures the batch's tokens per millisecond for each k (0 included): when
/// one batched pass already saturates the machine, k = 0 wins and the step is a plain batched one. Sampled rows do not
/// draft, so that a seeded request decodes the same whatever the batch around it; nor do rows whose logits are
/// penalized or biased, or that report logprobs (their tokens are chosen from more than the model's logits).
/// </summary>
sealed class BatchStep(BatchGenerator batch, IDrafter? drafter, DraftVerifier verifier, SpeculativeOptions options, ServingMetrics metrics)
{
    readonly DraftLengthController[] _controllers = [.. Enumerable.Range(0, batch.Rows).Select(_ => new DraftLengthController(options.DraftTokens, options.MaxAdaptiveDraftTokens))];
    readonly int[] _pending = new int[batch.Rows];

    /// <summary>Steps the rows marked in <paramref name="decoding"/> and hands each row's tokens to <paramref name="rows"/>.</summary>
    public void Run(EngineSlot?[] slots, bool[] decoding, IRowSink rows)
    {
        int busy = 0;
        for (int r = 0; r < slots.Length; r++) if (decoding[r]) { busy++; _pending[r] = slots[r]!.Pending; }
        if (drafter is null) Plain(slots, decoding, rows);
        else Speculative(slots, decoding, busy, rows);
    }

    void Plain(EngineSlot?[] slots, bool[] decoding, IRowSink rows)
    {
        try { batch.Step(_pending, decoding); }
        catch (Exception e) { rows.FailAll(e); return; }
        for (int r = 0; r < slots.Length; r++)
            if (decoding[r] && slots[r] is { } s) rows.Accept(r, () => s.Sampler.Sample(batch.Logits(r)));
    }

    void Speculative(EngineSlot?[] slots, bool[] decoding, int busy, IRowSink rows)
    {
        var clock = Stopwatch.StartNew();
        var controller = _controllers[Math.Min(busy, _controllers.Length) - 1];
        int k = controller.Next();
        var (drafts, played) = Draft(slots, decoding, k);
        var plain = new bool[slots.Length];
        var before = new int[slots.Length];
        var passStart = new DateTime[slots.Length];
        for (int r = 0; r < slots.Length; r++) if (decoding[r]) { before[r] = batch.Length(r); plain[r] = drafts[r]!.Length == 0; }
        try
        {
            for (int r = 0; r < slots.Length; r++)
                if (decoding[r] && !plain[r])
                {
                    if (slots[r]!.DecodeSpan is not null) passStart[r] = DateTime.UtcNow; // read the clock only for a traced row
                    batch.Append(r, [slots[r]!.Pending, .. drafts[r]!]);
                }
            if (plain.Any(p => p)) batch.Step(_pending, plain);
        }
        catch (Exception e) { rows.FailAll(e); return; }
        int emitted = 0, proposed = 0, accepted = 0;
        for (int r = 0; r < slots.Length; r++)
        {
            if (!decoding[r] || slots[r] is not { } s) continue;
            s.PlainNext = false;
            if (plain[r]) { emitted++; rows.Accept(r, () => s.Sampler.Sample(batch.Logits(r))); continue; }
            var verdict = Verify(r, s, drafts[r]!, before[r]);
            if (s.DecodeSpan is { } span)
                ServingTraces.Past("speculative verification", span.Context, passStart[r], DateTime.UtcNow, ("sio.draft.proposed", drafts[r]!.Length), ("sio.draft.accepted", verdict.Accepted));
            proposed += drafts[r]!.Length;
            accepted += verdict.Accepted;
            emitted += Emit(r, s, drafts[r]!, verdict, rows);
        }
        metrics.Drafted(proposed, accepted);
        controller.Observe(played > 0 ? k : 0, emitted, clock.Elapsed.TotalMilliseconds);
    }

    /// <summary>Each greedy row's drafts (at most k, and what its cache and max_tokens leave room for).</summary>
    (int[]?[] Drafts, int Played) Draft(EngineSlot?[] slots, bool[] decoding, int k)
    {
        var drafts = new int[]?[slots.Length];
        int played = 0;
        for (int r = 0; r < slots.Length; r++)
        {
            if (!decoding[r] || slots[r] is not { } s) continue;
            int room = Math.Min(batch.Capacity - batch.Length(r) - 1, s.Remaining - 1);
            int kr = s.Sampler.Options is { IsGreedy: true, AllowsDrafting: true } && !s.PlainNext ? Math.Min(k, room) : 0;
            played = Math.Max(played, kr);
            var d = kr > 0 ? drafter!.Draft(s.Context, kr, null).Tokens : [];
            drafts[r] = d.Length > kr ? d[..kr] : d;
        }
        return (drafts, played);
    }

    /// <summary>The verifier's verdict on row r; the row's cache keeps the pending token and the accepted drafts (at a near-tie, all but the last of them).</summary>
    Verdict Verify(int r, EngineSlot s, int[] drafts, int before)
    {
        var verdict = verifier.Verify(drafts, i => batch.LogitsAt(r, i), s.Sampler);
        s.Speculative.DraftSteps++;
        s.Speculative.Proposed += drafts.Length;
        s.Speculative.Accepted += verdict.Accepted;
        batch.RewindTo(r, before + (verdict.NearTie ? verdict.Accepted : verdict.Accepted + 1));
        return verdict;
    }

    /// <summary>Streams the accepted drafts and the target's token; at a near-tie, the next step for the row is a plain one, which decides that token as plain decoding would.</summary>
    static int Emit(int r, EngineSlot s, int[] drafts, Verdict verdict, IRowSink rows)
    {
        int emitted = 0;
        foreach (var t in drafts.AsSpan(0, verdict.Accepted))
        {
            if (!rows.Alive(r)) return emitted;
            emitted++;
            int token = t;
            rows.Accept(r, () => token);
        }
        if (!rows.Alive(r)) return emitted;
        if (verdict.NearTie) { s.PlainNext = true; return emitted; }
        rows.Accept(r, () => verdict.Next);
        return emitted + 1;
    }
}

/// <summary>Where a step's tokens go: the engine's row bookkeeping (streaming, stop tokens, finishing requests).</summary>
interface IRowSink
{
    /// <summary>Gives row r its next token; a failure computing it ends that request only.</summary>
    void Accept(int r, Func<int> next);
    /// <summary>Whether row r still holds a request.</summary>
    bool Alive(int r);
    /// <summary>A failed forward pass ends every request in the batch.</summary>
    void FailAll(Exception e);
}
