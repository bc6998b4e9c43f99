using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sio.Tokenization;

/// <summary>
/// SentencePiece-style BPE: the text gets a leading space (the dummy prefix, which takes part in
/// merging), each character is a piece or falls back to its UTF-8 bytes, then the adjacent pair
/// with the best rank is merged until none is left. Ranks come from piece scores (llama2.c
/// <c>tokenizer.bin</c>) or from the merge list (Hugging Face <c>tokenizer.json</c>).
/// </summary>
public sealed class SentencePieceBpeTokenizer : Tokenizer
{
    const char Metaspace = '\u2581'; // ▁, how tokenizer.json spells a space

    readonly Dictionary<string, int> _ids = new(StringComparer.Ordinal);
    readonly float[]? _scores;                                      // llama2.c: rank = -score of the merged piece
    readonly Dictionary<(int, int), int>? _mergeRanks;             // tokenizer.json: rank of the pair
    readonly int[] _byteIds = new int[256];
    readonly bool _addDummyPrefix;

    public override string Format { get; }
    /// <summary>Piece scores (tokenizer.bin) or null.</summary>
    public IReadOnlyList<float>? Scores => _scores;

    SentencePieceBpeTokenizer(string format, IReadOnlyList<string> pieces, float[]? scores, List<(string, string)>? merges,
        int bos, int eos, IEnumerable<int> special, bool addDummyPrefix, string source)
        : base(pieces, bos, eos, special)
    {
        Format = format;
        _scores = scores;
        _addDummyPrefix = addDummyPrefix;
        for (int i = 0; i < pieces.Count; i++) _ids.TryAdd(pieces[i], i);
        Array.Fill(_byteIds, -1);
        for (int i = 0; i < pieces.Count; i++)
            if (TryByteToken(pieces[i], out var b) && _byteIds[b] < 0) _byteIds[b] = i;
        if (merges is not null)
        {
            _mergeRanks = new();
            for (int r = 0; r < merges.Count; r++)
            {
                var (a, c) = merges[r];
                if (_ids.TryGetValue(a, out var ia) && _ids.TryGetValue(c, out var ic)) _mergeRanks.TryAdd((ia, ic), r);
                else throw SioException.InFile(source, $"merge \"{a} {c}\" names a piece that is not in the vocabulary");
            }
        }
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
        return new SentencePieceBpeTokenizer("tokenizer.bin", pieces, scores, null, bos, eos, [0, bos, eos], true, path);
    }

    /// <summary>Reads a Hugging Face tokenizer.json whose model is SentencePiece-style BPE (byte fallback, ▁ for spaces).</summary>
    public static SentencePieceBpeTokenizer FromTokenizerJson(string path, int bos, int eos)
    {
        JsonObject root;
        try { root = JsonNode.Parse(File.ReadAllText(path))!.AsObject(); }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException)
        {
            throw SioException.InFile(path, $"not a JSON object ({e.Message})");
        }
        var model = root["model"] as JsonObject ?? throw SioException.InFile(path, "no \"model\" object");
        var type = model["type"]?.GetValue<string>();
        if (type != "BPE") throw SioException.InFile(path, $"unsupported tokenizer model type {type ?? "(none)"}: sio reads BPE");
        bool byteFallback = model["byte_fallback"]?.GetValue<bool>() ?? false;
        if (!byteFallback)
            throw SioException.InFile(path, "unsupported byte-level BPE (GPT-2 style) tokenizer.json: sio reads SentencePiece-style BPE with byte_fallback");
        var vocab = model["vocab"] as JsonObject ?? throw SioException.InFile(path, "no model.vocab");
        int size = 0;
        foreach (var (_, v) in vocab) size = Math.Max(size, v!.GetValue<int>() + 1);
        var added = root["added_tokens"] as JsonArray ?? [];
        foreach (var a in added) size = Math.Max(size, a!["id"]!.GetValue<int>() + 1);
        var pieces = new string[size];
        Array.Fill(pieces, "");
        foreach (var (k, v) in vocab) pieces[v!.GetValue<int>()] = k.Replace(Metaspace, ' ');
        var special = new List<int>();
        foreach (var a in added)
        {
            int id = a!["id"]!.GetValue<int>();
            pieces[id] = a["content"]!.GetValue<string>();
            if (a["special"]?.GetValue<bool>() ?? false) special.Add(id);
        }
        var merges = new List<(string, string)>();
        foreach (var m in model["merges"] as JsonArray ?? [])
        {
            if (m is JsonArray pair) merges.Add((pair[0]!.GetValue<string>(), pair[1]!.GetValue<string>()));
            else
            {
                var s = m!.GetValue<string>();
                int sp = s.IndexOf(' ', 1);
                if (sp < 0) throw SioException.InFile(path, $"merge \"{s}\" is not two pieces");
                merges.Add((s[..sp], s[(sp + 1)..]));
            }
        }
        merges = merges.Select(p => (p.Item1.Replace(Metaspace, ' '), p.Item2.Replace(Metaspace, ' '))).ToList();
        var json = root.ToJsonString();
        bool prefix = json.Contains("\"Prepend\"") || json.Contains("\"prepend_scheme\":\"first\"") || json.Contains("\"prepend_scheme\":\"always\"")
            || json.Contains("\"add_prefix_space\":true");
        return new SentencePieceBpeTokenizer("tokenizer.json", pieces, null, merges, bos, eos, special, prefix, path);
    }

    public override List<int> Encode(string text, bool addBos = true)
    {
        var tokens = new List<int>(text.Length + 2);
        if (addBos) tokens.Add(BosTokenId);
        if (text.Length == 0) return tokens;

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
        tokens.AddRange(MergePairs(symbols));
        return tokens;
    }

    /// <summary>
    /// Byte-pair merging in O(n log n): symbols form a linked list, candidate pairs wait in a heap ordered by (rank, left
    /// position), and a popped pair whose sides changed since it was queued is skipped. Equal to repeatedly merging the
    /// leftmost best-ranked pair.
    /// </summary>
    List<int> MergePairs(List<int> symbols)
    {
        int n = symbols.Count;
        if (n < 2) return symbols;
        var id = symbols.ToArray();
        var next = new int[n];
        var prev = new int[n];
        for (int i = 0; i < n; i++) { next[i] = i + 1 < n ? i + 1 : -1; prev[i] = i - 1; }
        var queue = new PriorityQueue<(int Left, int Right, int Merged), (double Rank, int Left)>();
        void Offer(int left)
        {
            int right = left < 0 ? -1 : next[left];
            if (right >= 0 && TryMerge(id[left], id[right], out var merged, out var rank)) queue.Enqueue((left, right, merged), (rank, left));
        }
        for (int i = 0; i + 1 < n; i++) Offer(i);
        var alive = new bool[n];
        Array.Fill(alive, true);
        while (queue.TryDequeue(out var pair, out var key))
        {
            var (left, right, merged) = pair;
            if (!alive[left] || !alive[right] || next[left] != right) continue;
            if (!TryMerge(id[left], id[right], out var now, out var rank) || now != merged || rank != key.Rank) continue; // a side changed since it was queued
            id[left] = merged;
            alive[right] = false;
            next[left] = next[right];
            if (next[right] >= 0) prev[next[right]] = left;
            Offer(prev[left]);
            Offer(left);
        }
        var result = new List<int>(n);
        for (int i = 0; i >= 0; i = next[i]) result.Add(id[i]);
        return result;
    }

    bool TryMerge(int a, int b, out int merged, out double rank)
    {
        merged = -1; rank = 0;
        if (_mergeRanks is not null)
        {
            if (!_mergeRanks.TryGetValue((a, b), out var r)) return false;
            rank = r;
            return _ids.TryGetValue(Pieces[a] + Pieces[b], out merged);
        }
        if (!_ids.TryGetValue(Pieces[a] + Pieces[b], out merged)) return false;
        rank = -_scores![merged];
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
            .OrderByDescending(i => _scores?[i] ?? -i).ThenBy(i => i);
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
