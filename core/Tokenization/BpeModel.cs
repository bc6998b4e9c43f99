using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;

namespace Sio.Tokenization;

/// <summary>
/// tokenizer.json's BPE "model": each word becomes one symbol per character (or its UTF-8 bytes as &lt;0xAB&gt;
/// tokens under byte_fallback, or the unknown token), then ranked merges join adjacent symbols
/// (<see cref="BpeMerger"/>). With ignore_merges (Llama 3) a word that is itself in the vocabulary is one token.
/// Short words are cached, so encoding is linear in the text.
/// </summary>
sealed class BpeModel
{
    const int CachedWordLength = 64, CacheCapacity = 100_000;

    readonly Dictionary<string, int> _vocab;
    readonly Dictionary<long, (int Rank, int Merged)> _merges;
    readonly int[] _byteIds = new int[256];
    readonly int _unk;
    readonly bool _byteFallback, _fuseUnk, _ignoreMerges;
    readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    BpeModel(Dictionary<string, int> vocab, Dictionary<long, (int, int)> merges, int unk, bool byteFallback, bool fuseUnk, bool ignoreMerges)
    {
        (_vocab, _merges, _unk, _byteFallback, _fuseUnk, _ignoreMerges) = (vocab, merges, unk, byteFallback, fuseUnk, ignoreMerges);
        for (int b = 0; b < 256; b++) _byteIds[b] = vocab.TryGetValue($"<0x{b:X2}>", out var id) ? id : -1;
    }

    public IReadOnlyDictionary<string, int> Vocabulary => _vocab;
    /// <summary>The merges in rank order, as tokenizer.json lists them (GGUF export writes them for llama.cpp).</summary>
    public IReadOnlyList<(string Left, string Right)> Merges { get; private init; } = [];

    public static BpeModel Parse(JsonElement model, string source)
    {
        foreach (var affix in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
            if (TokenizerJson.Property(model, affix) is { ValueKind: JsonValueKind.String } v && v.GetString()!.Length > 0)
                throw SioException.InFile(source, $"model.{affix} \"{v.GetString()}\" is not supported (word-piece style BPE)");
        if (TokenizerJson.Property(model, "dropout") is { ValueKind: JsonValueKind.Number } d && d.GetDouble() > 0)
            throw SioException.InFile(source, "model.dropout is set: BPE dropout is for training, sio encodes deterministically");
        var vocabNode = TokenizerJson.Property(model, "vocab");
        if (vocabNode.ValueKind != JsonValueKind.Object) throw SioException.InFile(source, "model.vocab must be an object of piece → id");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var p in vocabNode.EnumerateObject())
            vocab[p.Name] = p.Value.TryGetInt32(out var id) && id >= 0 ? id : throw SioException.InFile(source, $"model.vocab: \"{p.Name}\" has no valid id");
        var merges = ParseMerges(model, vocab, source, out var ordered);
        int unk = TokenizerJson.Property(model, "unk_token") is { ValueKind: JsonValueKind.String } u
            ? vocab.TryGetValue(u.GetString()!, out var uid) ? uid : throw SioException.InFile(source, $"model.unk_token \"{u.GetString()}\" is not in the vocabulary")
            : -1;
        return new BpeModel(vocab, merges, unk, TokenizerJson.Bool(model, "byte_fallback", false),
            TokenizerJson.Bool(model, "fuse_unk", false), TokenizerJson.Bool(model, "ignore_merges", false))
        { Merges = ordered };
    }

    static Dictionary<long, (int, int)> ParseMerges(JsonElement model, Dictionary<string, int> vocab, string source, out List<(string, string)> ordered)
    {
        ordered = [];
        var node = TokenizerJson.Property(model, "merges");
        var merges = new Dictionary<long, (int, int)>(node.ValueKind == JsonValueKind.Array ? node.GetArrayLength() : 0, PairKeyComparer.Instance);
        if (node.ValueKind == JsonValueKind.Undefined) return merges;
        if (node.ValueKind != JsonValueKind.Array) throw SioException.InFile(source, "model.merges must be an array");
        int rank = 0;
        foreach (var m in node.EnumerateArray())
        {
            var (a, b) = m.ValueKind switch
            {
                JsonValueKind.Array when m.GetArrayLength() == 2 && m[0].ValueKind == JsonValueKind.String && m[1].ValueKind == JsonValueKind.String
                    => (m[0].GetString()!, m[1].GetString()!),
                JsonValueKind.String when m.GetString()!.IndexOf(' ', 1) is var sp and > 0 => (m.GetString()![..sp], m.GetString()![(sp + 1)..]),
                _ => throw SioException.InFile(source, $"model.merges[{rank}] is not a pair of pieces"),
            };
            if (!vocab.TryGetValue(a, out var ia) || !vocab.TryGetValue(b, out var ib) || !vocab.TryGetValue(a + b, out var merged))
                throw SioException.InFile(source, $"model.merges[{rank}] \"{a} {b}\" names a piece that is not in the vocabulary");
            merges.TryAdd(Key(ia, ib), (rank, merged));
            ordered.Add((a, b));
            rank++;
        }
        return merges;
    }

    static long Key(int a, int b) => ((long)a << 32) | (uint)b;

    /// <summary>long's own hash XORs the halves, so pairs (a, b) of ids collide in heaps; this one mixes them.</summary>
    sealed class PairKeyComparer : IEqualityComparer<long>
    {
        public static readonly PairKeyComparer Instance = new();
        public bool Equals(long x, long y) => x == y;
        public int GetHashCode(long key) => (int)(((ulong)key * 0x9E3779B97F4A7C15UL) >> 32);
    }

    /// <summary>Appends the tokens of one word.</summary>
    public void Encode(string word, List<int> output)
    {
        if (word.Length <= CachedWordLength && _cache.TryGetValue(word, out var cached)) { output.AddRange(cached); return; }
        if (_ignoreMerges && _vocab.TryGetValue(word, out var whole)) { output.Add(whole); return; }
        var tokens = new List<int>(word.Length);
        BpeMerger.Merge(Symbols(word), TryMerge, tokens);
        if (word.Length <= CachedWordLength)
        {
            if (_cache.Count >= CacheCapacity) _cache.Clear();
            _cache.TryAdd(word, tokens.ToArray());
        }
        output.AddRange(tokens);
    }

    bool TryMerge(int left, int right, out int merged, out double rank)
    {
        if (_merges.TryGetValue(Key(left, right), out var m)) { (merged, rank) = (m.Merged, m.Rank); return true; }
        (merged, rank) = (-1, 0);
        return false;
    }

    List<int> Symbols(string word)
    {
        var symbols = new List<int>(word.Length);
        Span<byte> utf8 = stackalloc byte[4];
        for (int i = 0; i < word.Length; i++)
        {
            int width = char.IsSurrogatePair(word, i) ? 2 : 1;
            var ch = word.Substring(i, width);
            i += width - 1;
            if (_vocab.TryGetValue(ch, out var id)) { symbols.Add(id); continue; }
            int n = Encoding.UTF8.GetBytes(ch, utf8);
            if (_byteFallback && AllBytesKnown(utf8[..n])) { foreach (var b in utf8[..n]) symbols.Add(_byteIds[b]); continue; }
            if (_unk < 0) throw new SioException($"the character U+{char.ConvertToUtf32(ch, 0):X4} is not in the vocabulary, which has no unknown token");
            if (!(_fuseUnk && symbols.Count > 0 && symbols[^1] == _unk)) symbols.Add(_unk);
        }
        return symbols;
    }

    bool AllBytesKnown(ReadOnlySpan<byte> bytes)
    {
        foreach (var b in bytes) if (_byteIds[b] < 0) return false;
        return true;
    }
}
