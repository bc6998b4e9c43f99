using Sio.Generation;

namespace Sio.Speculative;

/// <summary>
/// Prompt lookup: find the latest earlier occurrence of the context's last n tokens (n from
/// <see cref="MaxN"/> down to <see cref="MinN"/>) and propose what followed it. No model, no cost;
/// strong where the output repeats the input (question answering, summarization, code edits).
/// </summary>
public sealed class NgramDrafter(int maxN = 3, int minN = 1) : IDrafter
{
    public int MaxN { get; } = maxN;
    public int MinN { get; } = minN;
    public string Name => "ngram";

    public DraftProposal Draft(IReadOnlyList<int> context, int k, Sampler? sampler)
    {
        int len = context.Count;
        for (int n = Math.Min(MaxN, len - 1); n >= MinN; n--)
        {
            for (int start = len - n - 1; start >= 0; start--) // latest match first
            {
                bool match = true;
                for (int i = 0; i < n && match; i++) match = context[start + i] == context[len - n + i];
                if (!match) continue;
                // what followed; where that runs into the present, the pattern repeats (a loop of period len − from)
                int from = start + n;
                var tokens = new int[k];
                for (int i = 0; i < k; i++) tokens[i] = from + i < len ? context[from + i] : tokens[from + i - len];
                return new DraftProposal(tokens, null);
            }
        }
        return DraftProposal.None;
    }

    public void Dispose() { }
}
