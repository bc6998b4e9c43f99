using Sio.Generation;

namespace Sio.Speculative;

/// <summary>
/// Retrieval drafting (after REST, He et al. 2023): the longest suffix of the context that occurs
/// in a datastore of token sequences (the user's own text, tokenized with the target's tokenizer,
/// plus the context itself, so it also does prompt lookup) selects the places where it occurred;
/// the draft follows the continuation most of those places agree on, token by token, while the
/// agreement lasts. No model runs: drafting costs a few hash lookups. The store also learns every
/// sequence the target completes (<see cref="Learn"/>), as a server's past responses would: models
/// repeat themselves across requests far more than within one.
/// </summary>
public sealed class DatastoreDrafter : ILearningDrafter
{
    const int MaxN = 8, MinN = 2, MaxCandidates = 32, ContextWindow = 2048;
    readonly List<int> _store = new();                    // sequences separated by -1
    // hash of an n-gram → its latest occurrence; occurrences chain back to earlier ones (no per-key lists to allocate)
    readonly Dictionary<ulong, int> _latest = new();
    readonly List<(int At, int Previous)> _occurrences = new(); // At: the position just after the n-gram
    int _storeEnd;

    public DatastoreDrafter(IEnumerable<IReadOnlyList<int>> sequences, string name = "datastore")
    {
        Name = name;
        foreach (var s in sequences) Learn(s);
    }

    /// <summary>Adds a sequence to the store (thread-safe against concurrent drafting is not needed: one decoder uses a drafter at a time).</summary>
    public void Learn(IReadOnlyList<int> sequence)
    {
        {
            int start = _store.Count;
            _store.AddRange(sequence);
            _store.Add(-1);
            for (int end = start + 1; end < _store.Count - 1; end++) // an n-gram ending before position `end`
                for (int n = MinN; n <= MaxN && end - n >= start; n++)
                {
                    var key = Hash(_store, end - n, n);
                    _occurrences.Add((end, _latest.TryGetValue(key, out var previous) ? previous : -1));
                    _latest[key] = _occurrences.Count - 1;
                }
        }
        _storeEnd = _store.Count;
    }

    public string Name { get; }
    public int Tokens => _storeEnd;

    public DraftProposal Draft(IReadOnlyList<int> context, int k, Sampler? sampler)
    {
        // candidates: positions (in the store, or earlier in the context) right after the longest matching suffix
        Span<int> at = stackalloc int[MaxCandidates];
        Span<bool> inContext = stackalloc bool[MaxCandidates];
        for (int n = Math.Min(MaxN, context.Count - 1); n >= MinN; n--)
        {
            int count = 0;
            if (_latest.TryGetValue(Hash(context, context.Count - n, n), out var h))
                for (; h >= 0 && count < MaxCandidates; h = _occurrences[h].Previous)
                {
                    int pos = _occurrences[h].At;
                    if (Matches(_store, pos - n, context, context.Count - n, n)) { at[count] = pos; inContext[count++] = false; }
                }
            for (int p = context.Count - 1; p >= Math.Max(n, context.Count - ContextWindow) && count < MaxCandidates; p--)
                if (Matches(context, p - n, context, context.Count - n, n)) { at[count] = p; inContext[count++] = true; }
            if (count == 0) continue;

            var draft = new int[k];
            int length = 0;
            for (int j = 0; j < k && count > 0; j++)
            {
                // the token most candidates continue with (a candidate past its end has no vote)
                int best = -1, bestVotes = 0, total = 0;
                for (int c = 0; c < count; c++)
                {
                    int t = Next(inContext[c], at[c] + j, context);
                    if (t < 0) continue;
                    total++;
                    if (t == best) continue; // already counted in full
                    int votes = 0;
                    for (int d = 0; d < count; d++) if (Next(inContext[d], at[d] + j, context) == t) votes++;
                    if (votes > bestVotes) { best = t; bestVotes = votes; }
                }
                if (best < 0 || (j > 0 && bestVotes * 2 < total)) break; // the candidates disagree: stop here
                draft[length++] = best;
                int kept = 0;
                for (int c = 0; c < count; c++)
                    if (Next(inContext[c], at[c] + j, context) == best) { at[kept] = at[c]; inContext[kept++] = inContext[c]; }
                count = kept;
            }
            if (length > 0) return new DraftProposal(draft[..length], null);
        }
        return DraftProposal.None;
    }

    int Next(bool inContext, int at, IReadOnlyList<int> context) =>
        inContext ? (at < context.Count ? context[at] : -1) : (at < _storeEnd ? _store[at] : -1);

    static bool Matches(IReadOnlyList<int> a, int aStart, IReadOnlyList<int> b, int bStart, int n)
    {
        if (aStart < 0) return false;
        for (int i = 0; i < n; i++) if (a[aStart + i] != b[bStart + i]) return false;
        return true;
    }

    static ulong Hash(IReadOnlyList<int> s, int start, int n)
    {
        ulong h = 1469598103934665603UL ^ (ulong)n;
        for (int i = 0; i < n; i++) { h ^= (uint)s[start + i]; h *= 1099511628211UL; }
        return h;
    }

    public void Dispose() { }
}
