using System.Diagnostics;
using Sio.Generation;

namespace Sio.Speculative;

/// <summary>
/// Decoding with a drafter: each step drafts up to k tokens, runs the pending token and the drafts
/// through the target in one pass, keeps the prefix <see cref="DraftVerifier"/> accepts plus the target's own next
/// token, and rewinds the target's cache past the rest. Without a drafter every step is a plain decode step.
///
/// Floating point: logits of a token computed in a batch of k+1 differ from a one-token run in the
/// last bits, which can flip an argmax where the two best logits are all but tied. A greedy step
/// therefore stops at a row whose top-2 margin is under the model's <see cref="ExactnessMargin"/> (relative
/// to the top logit; at least <see cref="TieMargin"/>) — or meets one in a one-token step on top of
/// batch-computed entries — and rebuilds the cache from the first batch-computed token one token at a
/// time, exactly as plain decoding built it, before deciding. For float32 kernels that is rare: the margin
/// is a few rounding errors wide; for kernels whose numerical path changes with the batch shape it is
/// wider, measured.
/// </summary>
public sealed class SpeculativeDecoder : IDisposable
{
    readonly Generator _target;
    readonly IDrafter? _drafter;
    readonly Sampler _sampler;
    readonly DraftLengthController _controller;
    readonly List<int> _context = new(); // every token so far; the last one is pending (not yet run through the target)

    /// <summary>Top-2 logit margin, relative to the top logit, under which a batched row does not decide a greedy token.</summary>
    public const float TieMargin = 2e-5f;
    int _firstBatched = int.MaxValue; // cache position of the first generated token computed in a batch
    readonly DraftVerifier _verifier;

    public SpeculativeDecoder(Model target, IDrafter? drafter, SamplingOptions sampling, SpeculativeOptions? options = null, int capacity = 0)
    {
        options = (options ?? new SpeculativeOptions()).Validate();
        _target = new Generator(target, capacity);
        _sampler = new Sampler(sampling);
        _drafter = sampling.AllowsDrafting ? drafter : null; // logprobs are reported one decided token at a time
        _verifier = new DraftVerifier(_drafter is null || !_sampler.Options.IsGreedy ? TieMargin : ExactnessMargin.For(target));
        _controller = _drafter is null ? new DraftLengthController(0, 0) : DraftLengthController.For(target, _drafter, options);
        Stats = new SpeculativeStats { Drafter = _drafter?.Name ?? "none" };
    }

    public SpeculativeStats Stats { get; }
    public IReadOnlyList<int> Context => _context;
    public Generator Target => _target;

    /// <summary>Runs the prompt and returns the first new token.</summary>
    public int Start(IReadOnlyList<int> prompt) => Start(prompt, null);

    /// <summary>Runs the prompt; the next token is <paramref name="pending"/> when given (not sampled).</summary>
    internal int Start(IReadOnlyList<int> prompt, int? pending)
    {
        _context.Clear();
        _context.AddRange(prompt);
        _firstBatched = int.MaxValue;
        _target.RewindTo(0);
        _target.AppendTokens(prompt.ToArray());
        _sampler.Prime(prompt);
        int first = pending ?? _sampler.Sample(_target.LastLogits);
        _sampler.Observe(first);
        _context.Add(first);
        return first;
    }

    /// <summary>One target pass: returns the accepted drafts and the target's next token (at most <paramref name="maxNew"/>, none when the cache is full).</summary>
    public IReadOnlyList<int> Step(int maxNew)
    {
        int room = _target.Capacity - _target.Length;
        if (room < 1 || maxNew < 1) return [];
        int pending = _context[^1];

        var step = Stopwatch.StartNew();
        int k = _drafter is null ? 0 : Math.Min(_controller.Next(), Math.Min(room - 1, maxNew - 1));
        var clock = Stopwatch.StartNew();
        var proposal = k > 0 ? _drafter!.Draft(_context, k, _sampler.Options.IsGreedy ? null : _sampler) : DraftProposal.None;
        double draftMs = clock.Elapsed.TotalMilliseconds;
        var drafts = proposal.Tokens.Length <= k ? proposal.Tokens : proposal.Tokens[..k];

        var feed = new int[drafts.Length + 1];
        feed[0] = pending;
        drafts.CopyTo(feed, 1);
        clock.Restart();
        if (feed.Length > 1) _firstBatched = Math.Min(_firstBatched, _target.Length);
        _target.AppendTokens(feed);
        double verifyMs = clock.Elapsed.TotalMilliseconds;

        // a plain step on a cache built one token at a time is plain decoding itself; anything else goes through the verifier
        bool exact = drafts.Length == 0 && (!_sampler.Options.IsGreedy || _firstBatched >= _target.Length);
        var (accepted, next, tie) = exact ? new Verdict(0, _sampler.Sample(_target.Logits(0)), false)
            : _verifier.Verify(drafts, _target.Logits, _sampler, proposal.Distributions);
        if (tie)
        {
            // rebuild, one token at a time, every entry from the first batch-computed one through the
            // token before the near-tie, exactly as plain decoding computed them; then decide
            int keep = _target.Length - (drafts.Length - accepted); // through feed[accepted]
            var replay = new List<int>();
            for (int p = _firstBatched; p < keep; p++) replay.Add(p < _context.Count ? _context[p] : drafts[p - _context.Count]);
            _target.RewindTo(Math.Min(_firstBatched, keep - 1));
            if (replay.Count == 0) replay.Add(feed[accepted]);
            foreach (var t in replay) _target.AppendTokens([t]);
            _firstBatched = int.MaxValue;
            next = Sampler.ArgMax(_target.LastLogits);
            Stats.ExactReplays++;
        }
        else
        {
            _target.RewindTo(_target.Length - (drafts.Length - accepted));
            if (_firstBatched >= _target.Length) _firstBatched = int.MaxValue;
        }
        var emitted = new int[accepted + 1];
        Array.Copy(drafts, emitted, accepted);
        emitted[accepted] = next;
        _context.AddRange(emitted);
        foreach (var t in emitted) _sampler.Observe(t);

        Stats.TargetSteps++;
        Stats.Emitted += emitted.Length;
        Stats.TargetMs += verifyMs;
        if (drafts.Length > 0) { Stats.DraftSteps++; Stats.Proposed += drafts.Length; Stats.Accepted += accepted; Stats.DraftMs += draftMs; }
        _controller.Observe(k, emitted.Length, step.Elapsed.TotalMilliseconds);
        return emitted;
    }

    public void Dispose() => _target.Dispose();
}
