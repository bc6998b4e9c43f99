using System.Runtime.CompilerServices;

namespace Sio.Speculative;

/// <summary>
/// Chooses each step's draft length k by what drafting has actually paid: for each candidate k
/// (0 = drafting off) it keeps a decaying tally of tokens emitted and milliseconds spent (drafting,
/// verification and bookkeeping), and plays the k with the most tokens per millisecond. Each k is
/// tried a few times first; afterwards a neighbour of the best k is re-tried now and then, at
/// doubling intervals (a re-try can be dear: a draft model that sat idle must catch up on the
/// tokens it missed), so a change in acceptance is noticed without paying much for the looking. Measuring the whole step, not a cost model, is what keeps
/// speculation from ever costing more than it saves. A fixed k bypasses all of this.
/// The tally lives with the target model and the kind of drafter, so it carries over from one request
/// (and one drafter instance) to the next: what paid for this model before is where the next request starts.
/// </summary>
public sealed class DraftLengthController
{
    static readonly ConditionalWeakTable<Generation.Model, Dictionary<string, DraftLengthController>> Shared = new();
    const double Decay = 0.97;
    static readonly int[] Arms = [0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32];
    const int TriesEach = 4, FirstRetry = 8, LastRetry = 1024, RetrySteps = 3;

    readonly int? _fixed;
    readonly int[] _arms;
    readonly double[] _tokens, _ms, _steps;
    readonly int[] _tries;
    int _sinceRetry, _retryEvery = FirstRetry, _current, _retries, _retryLeft, _explored;
    bool _retrying;
    double _msSinceRetry, _lastRetryMs;

    public DraftLengthController(int? fixedK, int maxK)
    {
        _fixed = fixedK;
        _arms = Arms.Where(k => k <= maxK).ToArray();
        _tokens = new double[_arms.Length];
        _ms = new double[_arms.Length];
        _steps = new double[_arms.Length];
        _tries = new int[_arms.Length];
        _explored = Math.Min(2, _arms.Length);
    }

    /// <summary>The controller for a target model and a kind of drafter (one per setting, kept while the model lives).</summary>
    public static DraftLengthController For(Generation.Model target, IDrafter drafter, SpeculativeOptions options)
    {
        var byDrafter = Shared.GetValue(target, _ => new Dictionary<string, DraftLengthController>());
        lock (byDrafter)
        {
            var key = $"{drafter.Name}|{options.DraftTokens}|{options.MaxAdaptiveDraftTokens}";
            if (!byDrafter.TryGetValue(key, out var c)) byDrafter[key] = c = new DraftLengthController(options.DraftTokens, options.MaxAdaptiveDraftTokens);
            return c;
        }
    }

    public double TokensPerMs(int arm) => _ms[arm] > 0 ? _tokens[arm] / _ms[arm] : 0;

    public int Next()
    {
        if (_fixed is int k) return k;
        if (_retryLeft > 0) { _retryLeft--; _retrying = true; return _arms[_current]; }
        // first, the k in play a few times each, in turns (not each k's tries in a row: the first steps of a process are
        // slow, and that must not stick to whichever k went first); k = 0 and 1 start in play, and the next k joins only
        // while the largest one in play is the best: a drafter that does not pay costs a few short drafts, not a sweep
        while (true)
        {
            int fewest = 0;
            for (int a = 1; a < _explored; a++) if (_tries[a] < _tries[fewest]) fewest = a;
            if (_tries[fewest] < TriesEach) return _arms[_current = fewest];
            int top = 0;
            for (int a = 1; a < _explored; a++) if (TokensPerMs(a) > TokensPerMs(top)) top = a;
            if (top == _explored - 1 && _explored < _arms.Length) { _explored++; continue; }
            break;
        }
        int best = 0;
        for (int a = 1; a < _arms.Length; a++) if (TokensPerMs(a) > TokensPerMs(best)) best = a;
        // a re-try is due after enough steps, and only once the time since the last one is twenty times what that one
        // cost (a draft model that sat idle must first catch up on everything it missed): re-tries stay under 5 %
        if (++_sinceRetry >= _retryEvery && _msSinceRetry >= 20 * _lastRetryMs)
        {
            _sinceRetry = 0;
            _msSinceRetry = 0;
            _retrying = true;
            _retryEvery = Math.Min(LastRetry, _retryEvery * 2);
            // re-try, in turn, drafting off (the baseline) and the neighbours of the best k
            var candidates = new[] { 0, best - 1, best + 1 }.Where(a => a >= 0 && a < _arms.Length && a != best).Distinct().ToArray();
            _retryLeft = RetrySteps - 1; // a few steps in a row, so the re-tried k's tally is refreshed, not nudged
            return _arms[_current = candidates[_retries++ % candidates.Length]];
        }
        return _arms[_current = best];
    }

    /// <summary>Records the step just played: the k it asked the drafter for (0 when the step could not draft, near the end
    /// of a generation), tokens emitted, and its whole time. A step whose drafter was asked but proposed nothing counts
    /// for its k: looking up and finding nothing is part of what playing that k costs (charged to k = 0, it made plain
    /// decoding look slower than it is, and a lookup drafter that rarely found anything was kept on at 0.8x).</summary>
    public void Observe(int played, int emitted, double stepMs)
    {
        if (_fixed is not null) return;
        if (_retrying) { _lastRetryMs = _retryLeft == RetrySteps - 1 ? stepMs : _lastRetryMs + stepMs; _retrying = false; }
        else _msSinceRetry += stepMs;
        int a = played == 0 ? 0 : _current;
        if (_tries[a]++ == 0) return; // the first step of each kind pays for warming up; it says little
        // a pause that is not the step's doing (a collection, a busy neighbour) would stick to a rarely played k: clip it
        if (_steps[a] >= TriesEach - 1) stepMs = Math.Min(stepMs, 2 * _ms[a] / _steps[a]);
        _tokens[a] = _tokens[a] * Decay + emitted;
        _ms[a] = _ms[a] * Decay + stepMs;
        _steps[a] = _steps[a] * Decay + 1;
    }
}
