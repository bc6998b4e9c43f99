using System.Security.Cryptography;
using System.Text;

namespace Sio.Tokenization;

/// <summary>
/// Text ↔ token ids for a SentencePiece-style vocabulary (pieces with byte fallback, a leading
/// space marker). Decoding is shared: each id maps to the bytes of its piece; a leading space is
/// dropped right after BOS, as llama2.c and SentencePiece do.
/// </summary>
public abstract class Tokenizer
{
    readonly byte[][] _pieceBytes;
    readonly bool[] _special;

    readonly bool _stripSpaceAfterBos;

    /// <param name="pieces">Each id's piece in display form (spaces as ' ', byte tokens as "&lt;0xAB&gt;"); its bytes follow from it.</param>
    protected Tokenizer(IReadOnlyList<string> pieces, int bos, int eos, IEnumerable<int> specialIds)
        : this(pieces, null, bos, eos, specialIds, stripSpaceAfterBos: true) { }

    /// <param name="pieces">Each id's piece as the vocabulary spells it.</param>
    /// <param name="pieceBytes">The bytes each id adds to the text, or null to derive them from the display-form pieces.</param>
    /// <param name="stripSpaceAfterBos">Whether the first token after BOS loses its leading space (SentencePiece's dummy prefix).</param>
    protected Tokenizer(IReadOnlyList<string> pieces, byte[][]? pieceBytes, int bos, int eos, IEnumerable<int> specialIds, bool stripSpaceAfterBos)
    {
        Pieces = pieces;
        BosTokenId = bos;
        EosTokenId = eos;
        _stripSpaceAfterBos = stripSpaceAfterBos;
        _special = new bool[pieces.Count];
        foreach (var id in specialIds) if (id >= 0 && id < pieces.Count) _special[id] = true;
        foreach (var p in pieces) MaxPieceChars = Math.Max(MaxPieceChars, p.Length);
        _pieceBytes = new byte[pieces.Count][];
        for (int i = 0; i < pieces.Count; i++)
            _pieceBytes[i] = _special[i] ? [] : pieceBytes?[i] ?? (TryByteToken(pieces[i], out var b) ? [b] : Encoding.UTF8.GetBytes(pieces[i]));
    }

    public int VocabSize => Pieces.Count;
    /// <summary>The most characters one token can stand for: a text longer than context × this cannot fit the context.</summary>
    public int MaxPieceChars { get; private set; } = 1;
    public int BosTokenId { get; }
    public int EosTokenId { get; }
    /// <summary>Token strings by id, as the vocabulary spells them (for compatibility checks and the fingerprint).</summary>
    public IReadOnlyList<string> Pieces { get; }
    /// <summary>Which kind of file this tokenizer came from (tokenizer.bin, tokenizer.json, tokenizer.model).</summary>
    public abstract string Format { get; }

    /// <summary>Whether this vocabulary starts a text with BOS (Qwen's does not).</summary>
    public virtual bool AddsBos => true;

    /// <summary>Token ids of a text, BOS first when asked and the vocabulary uses one. Special-token markers are text here.</summary>
    public List<int> Encode(string text, bool addBos = true)
    {
        var ids = new List<int>(text.Length / 3 + 2);
        if (addBos && AddsBos) ids.Add(BosTokenId);
        if (text.Length > 0) EncodeText(text, ids);
        return ids;
    }

    /// <summary>Appends the tokens of plain text.</summary>
    protected abstract void EncodeText(string text, List<int> output);

    public bool IsSpecial(int id) => id >= 0 && id < _special.Length && _special[id];

    /// <summary>
    /// Encodes text in which special-token markers (such as &lt;s&gt;, &lt;/s&gt;, &lt;|im_start|&gt;)
    /// stand for their ids, as chat templates write them; the text between markers is encoded as usual.
    /// </summary>
    public virtual List<int> EncodeWithSpecialTokens(string text, bool addBos = true)
    {
        var markers = new List<(string Piece, int Id)>();
        for (int i = 0; i < Pieces.Count; i++)
        {
            if (!IsSpecial(i)) continue;
            var p = Pieces[i].Trim();
            if (p.Length > 2 && p[0] == '<' && p[^1] == '>') markers.Add((p, i));
        }
        if (BareName(markers, BosTokenId, "<s>") is { } bos) markers.Add(bos);
        if (BareName(markers, EosTokenId, "</s>") is { } eos) markers.Add(eos);
        var ids = new List<int>();
        if (addBos && AddsBos) ids.Add(BosTokenId);
        int at = 0;
        // each marker's next occurrence at or after `at` (int.MaxValue: none left), found again only once `at` passes it,
        // so the text is searched once per marker rather than once per marker per segment
        var found = new int[markers.Count];
        for (int m = 0; m < markers.Count; m++) found[m] = Find(markers[m].Piece, 0);
        while (at < text.Length)
        {
            int next = -1, id = -1, len = 0;
            for (int m = 0; m < markers.Count; m++)
            {
                if (found[m] < at) found[m] = Find(markers[m].Piece, at);
                int k = found[m];
                if (k != int.MaxValue && (next < 0 || k < next || (k == next && markers[m].Piece.Length > len))) { next = k; id = markers[m].Id; len = markers[m].Piece.Length; }
            }
            var segment = next < 0 ? text[at..] : text[at..next];
            if (segment.Length > 0) ids.AddRange(Encode(segment, addBos: false));
            if (next < 0) break;
            ids.Add(id);
            at = next + len;
        }
        return ids;

        int Find(string piece, int from) => text.IndexOf(piece, from, StringComparison.Ordinal) is var k and >= 0 ? k : int.MaxValue;

        // llama2.c vocabularies spell BOS/EOS "\n<s>\n": chat templates write the bare names
        static (string, int)? BareName(List<(string Piece, int Id)> known, int id, string name) =>
            known.Any(m => m.Piece == name) ? null : (name, id);
    }

    /// <summary>The bytes a token adds to the text, given the token before it (-1 at the start).</summary>
    public ReadOnlySpan<byte> TokenBytes(int id, int previous)
    {
        if (id < 0 || id >= _pieceBytes.Length) throw new SioException($"token id {id} is outside the vocabulary of {VocabSize}");
        var b = _pieceBytes[id];
        if (_stripSpaceAfterBos && previous == BosTokenId && b.Length > 0 && b[0] == (byte)' ') return b.AsSpan(1);
        return b;
    }

    /// <summary>A token as text for display: a special token's name, otherwise its bytes (a partial character shows as U+FFFD).</summary>
    public string PieceText(int id) =>
        IsSpecial(id) ? Pieces[id] : Encoding.UTF8.GetString(TokenBytes(id, -1));

    /// <summary>Decodes ids to text; <paramref name="previous"/> is the token before the first id (-1 for none).</summary>
    public string Decode(IEnumerable<int> ids, int previous = -1)
    {
        var bytes = new List<byte>();
        foreach (var id in ids)
        {
            bytes.AddRange(TokenBytes(id, previous));
            previous = id;
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    /// <summary>A decoder for streaming, which holds back incomplete UTF-8 sequences.</summary>
    public TokenStream CreateStream(int previous = -1) => new(this, previous);

    /// <summary>sha256 over ids and pieces: equal fingerprints mean interchangeable token ids.</summary>
    public string Fingerprint()
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        for (int i = 0; i < Pieces.Count; i++)
        {
            sha.AppendData(BitConverter.GetBytes(i));
            sha.AppendData(Encoding.UTF8.GetBytes(Pieces[i]));
            sha.AppendData([0]);
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>Parses a byte-fallback piece "&lt;0xAB&gt;".</summary>
    public static bool TryByteToken(string piece, out byte value)
    {
        value = 0;
        return piece.Length == 6 && piece.StartsWith("<0x") && piece[5] == '>'
            && byte.TryParse(piece.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out value);
    }
}

/// <summary>Turns a stream of token ids into text chunks that are always whole UTF-8 characters.</summary>
public sealed class TokenStream(Tokenizer tokenizer, int previous)
{
    readonly List<byte> _pending = new();
    int _previous = previous;

    /// <summary>Adds a token and returns the text it completes (possibly empty).</summary>
    public string Decode(int id)
    {
        _pending.AddRange(tokenizer.TokenBytes(id, _previous));
        _previous = id;
        int complete = CompletePrefix(_pending);
        if (complete == 0) return "";
        var text = Encoding.UTF8.GetString(_pending.GetRange(0, complete).ToArray());
        _pending.RemoveRange(0, complete);
        return text;
    }

    /// <summary>Whatever is still held back, decoded as it is.</summary>
    public string Flush()
    {
        var text = Encoding.UTF8.GetString(_pending.ToArray());
        _pending.Clear();
        return text;
    }

    static int CompletePrefix(List<byte> b)
    {
        // Walk back over at most 3 continuation bytes to see whether the last sequence is complete.
        int n = b.Count;
        for (int back = 1; back <= Math.Min(4, n); back++)
        {
            byte c = b[n - back];
            if ((c & 0xC0) == 0x80) continue;            // continuation byte
            int need = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
            return back >= need ? n : n - back;
        }
        return n; // only continuation bytes: invalid, let the decoder replace them
    }
}
