namespace Sio.Tokenization;

/// <summary>One entry of tokenizer.json's added_tokens: a string matched in the raw text before anything else.</summary>
public sealed record AddedToken(int Id, string Content, bool Special, bool LeftStrip, bool RightStrip, bool SingleWord);

/// <summary>
/// Splits text at added tokens, leftmost first and longest among those starting at the same place, as Hugging Face
/// tokenizers do; the text between them goes on to normalization and BPE. Special tokens are matched only when asked:
/// a user's text that spells "&lt;|im_end|&gt;" stays text unless the caller means markers (a chat template's output).
/// </summary>
public sealed class AddedTokens
{
    sealed class Node
    {
        public Dictionary<char, Node>? Next;
        public AddedToken? Token;
    }

    readonly Node _root = new();

    public AddedTokens(IEnumerable<AddedToken> tokens)
    {
        foreach (var t in tokens)
        {
            if (t.Content.Length == 0) continue;
            var node = _root;
            foreach (var ch in t.Content)
            {
                node.Next ??= new();
                if (!node.Next.TryGetValue(ch, out var child)) node.Next[ch] = child = new Node();
                node = child;
            }
            node.Token ??= t;
        }
    }

    /// <summary>A piece of split text: either plain text (Token null) or one added token.</summary>
    public readonly record struct Piece(int Start, int Length, AddedToken? Token);

    /// <summary>The text cut into plain runs and added tokens; lstrip/rstrip tokens take the whitespace beside them.</summary>
    public List<Piece> Split(string text, bool matchSpecial)
    {
        var pieces = new List<Piece>();
        int plainStart = 0, at = 0;
        while (at < text.Length)
        {
            var token = LongestAt(text, at, matchSpecial, out int length);
            if (token is null) { at++; continue; }
            int start = at, end = at + length;
            if (token.LeftStrip) while (start > plainStart && char.IsWhiteSpace(text[start - 1])) start--;
            if (token.RightStrip) while (end < text.Length && char.IsWhiteSpace(text[end])) end++;
            if (start > plainStart) pieces.Add(new(plainStart, start - plainStart, null));
            pieces.Add(new(start, end - start, token));
            plainStart = at = end;
        }
        if (plainStart < text.Length) pieces.Add(new(plainStart, text.Length - plainStart, null));
        return pieces;
    }

    AddedToken? LongestAt(string text, int at, bool matchSpecial, out int length)
    {
        AddedToken? best = null;
        length = 0;
        var node = _root;
        for (int i = at; i < text.Length && node.Next is not null && node.Next.TryGetValue(text[i], out node); i++)
        {
            if (node.Token is { } t && (matchSpecial || !t.Special) && (!t.SingleWord || IsWholeWord(text, at, i + 1)))
            {
                best = t;
                length = i + 1 - at;
            }
        }
        return best;
    }

    static bool IsWholeWord(string text, int start, int end) =>
        (start == 0 || !char.IsLetterOrDigit(text[start - 1])) && (end == text.Length || !char.IsLetterOrDigit(text[end]));
}
