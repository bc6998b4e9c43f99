using System.Text;
using System.Text.Json.Nodes;

namespace Sio.Tokenization;

/// <summary>
/// llama2.c's tokenizer.bin, SentencePiece-style BPE: the text gets a leading space (the dummy prefix, which takes
/// part in merging), each character is a piece or falls back to its UTF-8 bytes, then the adjacent pair whose merged
/// piece scores best is merged until none is left. Can write itself as a Hugging Face tokenizer.json.
/// </summary>
public sealed class SentencePieceBpeTokenizer : Tokenizer
{
    const char Metaspace = '\u2581'; // ▁, how tokenizer.json spells a space

    readonly Dictionary<string, int> _ids = new(StringComparer.Ordinal);
    readonly float[] _scores;                                       // rank = -score of the merged piece
    readonly int[] _byteIds = new int[256];
    readonly bool _addDummyPrefix;

    public override string Format => "tokenizer.bin";
    /// <summary>Piece scores.</summary>
    public IReadOnlyList<float> Scores => _scores;

    SentencePieceBpeTokenizer(IReadOnlyList<string> pieces, float[] scores, int bos, int eos, IEnumerable<int> special, bool addDummyPrefix)
        : base(pieces, bos, eos, special)
    {
        _scores = scores;
        _addDummyPrefix = addDummyPrefix;
        for (int i = 0; i < pieces.Count; i++) _ids.TryAdd(pieces[i], i);
        Array.Fill(_byteIds, -1);
        for (int i = 0; i < pieces.Count; i++)
            if (TryByteToken(pieces[i], out var b) && _byteIds[b] < 0) _byteIds[b] = i;
    }

    /// <summary>How many tokens a llama2.c tokenizer.bin holds (the file does not say; the model's config does).</summary>
    public static int CountLlama2cTokens(string path)
    {
        using var r = new BinaryReader(File.OpenRead(path));
        long length = r.BaseStream.Length;
        if (length < 4) throw SioException.InFile(path, "not a llama2.c tokenizer: too short");
        r.ReadInt32();
        int count = 0;
        while (r.BaseStream.Position + 8 <= length)
        {
            r.ReadSingle();
            int len = r.ReadInt32();
            if (len < 0 || r.BaseStream.Position + len > length) throw SioException.InFile(path, $"not a llama2.c tokenizer: token {count} has length {len}");
            r.BaseStream.Seek(len, SeekOrigin.Current);
            count++;
        }
        return count;
    }

    /// <summary>Reads llama2.c's tokenizer.bin: int32 max_token_length, then per token float32 score, int32 length, bytes.</summary>
    public static SentencePieceBpeTokenizer FromLlama2c(string path, int vocabSize, int bos = 1, int eos = 2)
    {
        if (!File.Exists(path)) throw SioException.InFile(path, "tokenizer file not found");
        var pieces = new List<string>(vocabSize);
        var scores = new float[vocabSize];
        using var r = new BinaryReader(File.OpenRead(path));
        long length = r.BaseStream.Length;
        try
        {
            int maxLen = r.ReadInt32();
            if (maxLen <= 0 || maxLen > 1 << 16) throw SioException.InFile(path, $"not a llama2.c tokenizer: max_token_length {maxLen}");
            for (int i = 0; i < vocabSize; i++)
            {
                scores[i] = r.ReadSingle();
                int len = r.ReadInt32();
                if (len < 0 || len > maxLen || r.BaseStream.Position + len > length)
                    throw SioException.InFile(path, len < 0 || len > maxLen
                        ? $"not a llama2.c tokenizer for a vocabulary of {vocabSize}: token {i} has length {len}"
                        : $"truncated llama2.c tokenizer: token {i} of {vocabSize} runs past the end of the file");
                pieces.Add(Encoding.UTF8.GetString(r.ReadBytes(len)));
            }
        }
        catch (EndOfStreamException)
        {
            throw SioException.InFile(path, $"truncated llama2.c tokenizer: it holds fewer than the model's {vocabSize} tokens");
        }
        return new SentencePieceBpeTokenizer(pieces, scores, bos, eos, [0, bos, eos], true);
    }

    protected override void EncodeText(string text, List<int> output)
    {
        // 1. one symbol per character, or its UTF-8 bytes when the character is not a piece
        var symbols = new List<int>(text.Length + 1);
        if (_addDummyPrefix && _ids.TryGetValue(" ", out var space)) symbols.Add(space);
        Span<byte> utf8 = stackalloc byte[4];
        for (int i = 0; i < text.Length; i += char.IsSurrogatePair(text, i) ? 2 : 1)
        {
            var ch = text.Substring(i, char.IsSurrogatePair(text, i) ? 2 : 1);
            if (_ids.TryGetValue(ch, out var id)) { symbols.Add(id); continue; }
            int n = Encoding.UTF8.GetBytes(ch, utf8);
            for (int j = 0; j < n; j++) symbols.Add(_byteIds[utf8[j]] >= 0 ? _byteIds[utf8[j]] : 0);
        }

        // 2. merge the best-ranked adjacent pair until no pair merges (ties: leftmost)
        BpeMerger.Merge(symbols, TryMerge, output);
    }

    bool TryMerge(int a, int b, out int merged, out double rank)
    {
        rank = 0;
        if (!_ids.TryGetValue(Pieces[a] + Pieces[b], out merged)) return false;
        rank = -_scores[merged];
        return true;
    }

    /// <summary>
    /// Writes this vocabulary as a Hugging Face tokenizer.json (Llama-2 style: BPE with byte
    /// fallback, ▁ for spaces, a prepended ▁). Merges list every split of every piece, ranked by the
    /// merged piece's score, which reproduces score-ranked merging.
    /// </summary>
    public void WriteTokenizerJson(string path)
    {
        string Hf(string p) => p.Replace(' ', Metaspace);
        var vocab = new JsonObject();
        for (int i = 0; i < Pieces.Count; i++) vocab[IsSpecial(i) ? SpecialName(i) : Hf(Pieces[i])] = i;
        var order = Enumerable.Range(0, Pieces.Count).Where(i => !IsSpecial(i) && !TryByteToken(Pieces[i], out _))
            .OrderByDescending(i => _scores[i]).ThenBy(i => i);
        var merges = new JsonArray();
        foreach (var i in order)
        {
            var p = Pieces[i];
            for (int cut = 1; cut < p.Length; cut++)
            {
                if (char.IsLowSurrogate(p[cut])) continue;
                var (a, b) = (p[..cut], p[cut..]);
                if (_ids.ContainsKey(a) && _ids.ContainsKey(b)) merges.Add(new JsonArray(Hf(a), Hf(b)));
            }
        }
        var addedTokens = new JsonArray();
        foreach (var id in Enumerable.Range(0, Pieces.Count).Where(IsSpecial))
            addedTokens.Add(new JsonObject
            {
                ["id"] = id, ["content"] = SpecialName(id), ["single_word"] = false, ["lstrip"] = false,
                ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
            });
        JsonObject Replace(string from, string to) => new() { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = from }, ["content"] = to };
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = addedTokens,
            ["normalizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["normalizers"] = new JsonArray(new JsonObject { ["type"] = "Prepend", ["prepend"] = "\u2581" }, Replace(" ", "\u2581")),
            },
            ["pre_tokenizer"] = null,
            ["post_processor"] = null,
            ["decoder"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["decoders"] = new JsonArray(Replace("\u2581", " "), new JsonObject { ["type"] = "ByteFallback" }, new JsonObject { ["type"] = "Fuse" },
                    new JsonObject { ["type"] = "Strip", ["content"] = " ", ["start"] = 1, ["stop"] = 0 }),
            },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = SpecialName(0), ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null, ["fuse_unk"] = true, ["byte_fallback"] = true, ["ignore_merges"] = false,
                ["vocab"] = vocab, ["merges"] = merges,
            },
        };
        File.WriteAllText(path, root.ToJsonString());
        var config = new JsonObject
        {
            ["add_bos_token"] = true, ["add_eos_token"] = false,
            ["bos_token"] = SpecialName(BosTokenId), ["eos_token"] = SpecialName(EosTokenId), ["unk_token"] = SpecialName(0),
            ["model_max_length"] = 1_000_000, ["tokenizer_class"] = "LlamaTokenizer", ["clean_up_tokenization_spaces"] = false,
            ["legacy"] = true,
        };
        File.WriteAllText(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, "tokenizer_config.json"), config.ToJsonString(new() { WriteIndented = true }));
    }

    string SpecialName(int id) => id == BosTokenId ? "<s>" : id == EosTokenId ? "</s>" : id == 0 ? "<unk>" : Pieces[id].Trim();
}
