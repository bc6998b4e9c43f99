using System.Text;
using System.Text.Json;

namespace Sio.Tokenization;

/// <summary>
/// A Hugging Face tokenizer.json with a BPE model, byte-level (GPT-2, Llama 3, Qwen, SmolLM) or SentencePiece-style
/// with byte fallback (Llama 2, Mistral, Gemma): added tokens are cut out first, then each run of plain text is
/// normalized (<see cref="TextNormalizer"/>), cut into words (<see cref="PreTokenizer"/>) and merged
/// (<see cref="BpeModel"/>). tokenizer_config.json beside it says whether a BOS token is added. Decoding is
/// byte-exact: no clean-up of spaces around punctuation.
/// </summary>
public sealed class HuggingFaceTokenizer : Tokenizer
{
    readonly TextNormalizer _normalizer;
    readonly PreTokenizer _preTokenizer;
    readonly BpeModel _model;
    readonly AddedTokens _added;

    HuggingFaceTokenizer(Parts p, int bos, int eos)
        : base(p.Pieces, p.PieceBytes, bos, eos, p.Special, p.StripSpaceAfterBos)
    {
        (_normalizer, _preTokenizer, _model, _added, AddsBos) = (p.Normalizer, p.PreTokenizer, p.Model, new AddedTokens(p.Added), p.AddsBos);
        ByteLevel = p.PreTokenizer.ByteLevel;
        AddsSpacePrefix = p.StripSpaceAfterBos;
        _addedText = p.Added.Where(a => !a.Special).Select(a => a.Id).ToHashSet();
    }

    public override string Format => "tokenizer.json";
    public override bool AddsBos { get; }
    /// <summary>Whether tokens spell bytes in GPT-2's byte-level alphabet (otherwise ▁ for spaces and &lt;0xAB&gt; byte tokens).</summary>
    public bool ByteLevel { get; }
    /// <summary>Whether SentencePiece's dummy prefix applies: a space is prepended to the text (and dropped again after BOS).</summary>
    public bool AddsSpacePrefix { get; }
    /// <summary>The BPE merges in rank order.</summary>
    public IReadOnlyList<(string Left, string Right)> Merges => _model.Merges;
    /// <summary>The pre-tokenizer's word-splitting regexes, in order.</summary>
    public IReadOnlyList<string> SplitPatterns => _preTokenizer.Patterns;
    /// <summary>Whether an id is an added token that is not special (matched whole in any text; llama.cpp's user-defined tokens).</summary>
    public bool IsAddedText(int id) => _addedText.Contains(id);
    readonly HashSet<int> _addedText;

    sealed record Parts(TextNormalizer Normalizer, PreTokenizer PreTokenizer, BpeModel Model, List<AddedToken> Added,
        string[] Pieces, byte[][] PieceBytes, List<int> Special, bool StripSpaceAfterBos, bool AddsBos);

    /// <summary>Loads a tokenizer.json; <paramref name="vocabSize"/> (the model's, possibly padded) sets the id range.</summary>
    public static HuggingFaceTokenizer Load(string path, int vocabSize, int bos, int eos)
    {
        if (!File.Exists(path)) throw SioException.InFile(path, "tokenizer file not found");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(path)); }
        catch (JsonException e) { throw SioException.InFile(path, $"not valid JSON ({e.Message})"); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw SioException.InFile(path, "not a JSON object");
            var modelNode = TokenizerJson.Property(root, "model");
            if (modelNode.ValueKind != JsonValueKind.Object) throw SioException.InFile(path, "no \"model\" object");
            var type = TokenizerJson.Property(modelNode, "type") is { ValueKind: JsonValueKind.String } t ? t.GetString() : null;
            if (type != "BPE") throw SioException.InFile(path, $"unsupported tokenizer model type {type ?? "(none)"}: sio reads BPE (byte-level or with byte fallback)");
            var parts = Build(root, BpeModel.Parse(modelNode, path), vocabSize, path);
            var config = TokenizerConfig.Read(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, "tokenizer_config.json"));
            bos = config.BosToken is { } b && IdOf(parts, b) is int bid ? bid : bos;
            eos = config.EosToken is { } e && IdOf(parts, e) is int eid ? eid : eos;
            bool addsBos = config.AddBosToken ?? PostProcessorAddsBos(TokenizerJson.Property(root, "post_processor"));
            return new HuggingFaceTokenizer(parts with { AddsBos = addsBos && bos >= 0 }, bos, eos);
        }
    }

    static Parts Build(JsonElement root, BpeModel model, int vocabSize, string path)
    {
        var normalizer = TextNormalizer.Parse(TokenizerJson.Property(root, "normalizer"), path);
        var pre = PreTokenizer.Parse(TokenizerJson.Property(root, "pre_tokenizer"), path);
        var added = ReadAddedTokens(root, path);
        int size = Math.Max(vocabSize, Math.Max(model.Vocabulary.Values.DefaultIfEmpty(-1).Max(), added.Select(a => a.Id).DefaultIfEmpty(-1).Max()) + 1);
        var pieces = new string[size];
        Array.Fill(pieces, "");
        foreach (var (piece, id) in model.Vocabulary) pieces[id] = piece;
        foreach (var a in added) pieces[a.Id] = a.Content;
        var decoder = TokenizerJson.Property(root, "decoder").GetRawText();
        bool byteLevelDecoder = decoder.Contains("\"ByteLevel\"");
        var special = added.Where(a => a.Special).Select(a => a.Id).ToList();
        var bytes = new byte[size][];
        for (int i = 0; i < size; i++) bytes[i] = byteLevelDecoder ? ByteLevelBytes(pieces[i]) : MetaspaceBytes(pieces[i]);
        bool strip = !byteLevelDecoder && (decoder.Contains("\"Strip\"") || (decoder.Contains("\"Metaspace\"") && !decoder.Contains("\"never\"")) || normalizer.Prepends);
        return new Parts(normalizer, pre, model, added, pieces, bytes, special, strip, false);
    }

    static byte[] ByteLevelBytes(string piece) => ByteLevelAlphabet.Bytes(piece) ?? Encoding.UTF8.GetBytes(piece);

    static byte[] MetaspaceBytes(string piece) =>
        TryByteToken(piece, out var b) ? [b] : Encoding.UTF8.GetBytes(piece.Replace('\u2581', ' '));

    static List<AddedToken> ReadAddedTokens(JsonElement root, string path)
    {
        var list = new List<AddedToken>();
        var node = TokenizerJson.Property(root, "added_tokens");
        if (node.ValueKind == JsonValueKind.Undefined || node.ValueKind == JsonValueKind.Null) return list;
        if (node.ValueKind != JsonValueKind.Array) throw SioException.InFile(path, "\"added_tokens\" must be an array");
        int i = 0;
        foreach (var a in node.EnumerateArray())
        {
            if (!(TokenizerJson.Property(a, "id") is { ValueKind: JsonValueKind.Number } idNode && idNode.TryGetInt32(out var id) && id >= 0)
                || TokenizerJson.Property(a, "content") is not { ValueKind: JsonValueKind.String } content)
                throw SioException.InFile(path, $"added_tokens[{i}] needs a non-negative \"id\" and a string \"content\"");
            list.Add(new AddedToken(id, content.GetString()!, TokenizerJson.Bool(a, "special", false), TokenizerJson.Bool(a, "lstrip", false),
                TokenizerJson.Bool(a, "rstrip", false), TokenizerJson.Bool(a, "single_word", false)));
            i++;
        }
        return list;
    }

    static int? IdOf(Parts parts, string token) =>
        parts.Added.FirstOrDefault(a => a.Content == token)?.Id ?? (parts.Model.Vocabulary.TryGetValue(token, out var id) ? id : null);

    /// <summary>A TemplateProcessing post-processor whose single-sequence template starts with a special token adds BOS.</summary>
    static bool PostProcessorAddsBos(JsonElement node)
    {
        if (node.ValueKind != JsonValueKind.Object) return false;
        var type = TokenizerJson.Property(node, "type");
        if (type.ValueKind == JsonValueKind.String && type.GetString() == "Sequence")
            return TokenizerJson.Property(node, "processors") is { ValueKind: JsonValueKind.Array } ps && ps.EnumerateArray().Any(PostProcessorAddsBos);
        return type.ValueKind == JsonValueKind.String && type.GetString() == "TemplateProcessing"
            && TokenizerJson.Property(node, "single") is { ValueKind: JsonValueKind.Array } single && single.GetArrayLength() > 0
            && single[0].TryGetProperty("SpecialToken", out _);
    }

    protected override void EncodeText(string text, List<int> output) => EncodePieces(text, matchSpecial: false, output);

    /// <summary>Every added token in the text is its id, special ones included, as Hugging Face's encode does.</summary>
    public override List<int> EncodeWithSpecialTokens(string text, bool addBos = true)
    {
        var ids = new List<int>();
        if (addBos && AddsBos) ids.Add(BosTokenId);
        EncodePieces(text, matchSpecial: true, ids);
        return ids;
    }

    void EncodePieces(string text, bool matchSpecial, List<int> output)
    {
        foreach (var piece in _added.Split(text, matchSpecial))
        {
            if (piece.Token is { } token) { output.Add(token.Id); continue; }
            var normalized = _normalizer.Apply(text.Substring(piece.Start, piece.Length));
            foreach (var word in _preTokenizer.Split(normalized, first: piece.Start == 0)) _model.Encode(word, output);
        }
    }
}
