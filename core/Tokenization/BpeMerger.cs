namespace Sio.Tokenization;

/// <summary>Looks up whether two adjacent symbols merge, into which symbol, and with which rank (lower merges first).</summary>
public delegate bool PairMerge(int left, int right, out int merged, out double rank);

/// <summary>
/// Byte-pair merging in O(n log n): symbols form a linked list, candidate pairs wait in a heap ordered by (rank, left
/// position), and a popped pair whose sides changed since it was queued is skipped. Equal to repeatedly merging the
/// leftmost best-ranked pair, which is what SentencePiece and Hugging Face BPE do.
/// </summary>
public static class BpeMerger
{
    public static void Merge(List<int> symbols, PairMerge tryMerge, List<int> output)
    {
        int n = symbols.Count;
        if (n < 2) { output.AddRange(symbols); return; }
        var id = symbols.ToArray();
        var next = new int[n];
        var prev = new int[n];
        for (int i = 0; i < n; i++) { next[i] = i + 1 < n ? i + 1 : -1; prev[i] = i - 1; }
        var queue = new PriorityQueue<(int Left, int Right, int Merged), (double Rank, int Left)>(n, RankThenPosition.Instance);
        void Offer(int left)
        {
            int right = left < 0 ? -1 : next[left];
            if (right >= 0 && tryMerge(id[left], id[right], out var merged, out var rank)) queue.Enqueue((left, right, merged), (rank, left));
        }
        for (int i = 0; i + 1 < n; i++) Offer(i);
        var alive = new bool[n];
        Array.Fill(alive, true);
        while (queue.TryDequeue(out var pair, out var key))
        {
            var (left, right, merged) = pair;
            if (!alive[left] || !alive[right] || next[left] != right) continue;
            if (!tryMerge(id[left], id[right], out var now, out var rank) || now != merged || rank != key.Rank) continue; // a side changed since it was queued
            id[left] = merged;
            alive[right] = false;
            next[left] = next[right];
            if (next[right] >= 0) prev[next[right]] = left;
            Offer(prev[left]);
            Offer(left);
        }
        for (int i = 0; i >= 0; i = next[i]) output.Add(id[i]);
    }

    sealed class RankThenPosition : IComparer<(double Rank, int Left)>
    {
        public static readonly RankThenPosition Instance = new();
        public int Compare((double Rank, int Left) a, (double Rank, int Left) b) =>
            a.Rank < b.Rank ? -1 : a.Rank > b.Rank ? 1 : a.Left.CompareTo(b.Left);
    }
}
