using Sio.Tokenization;

namespace Sio.Models;

/// <summary>
/// A tokenizer as llama.cpp's GGUF keys describe it. SentencePiece-style vocabularies (llama2.c, tokenizer.model, and
/// tokenizer.json with byte fallback such as Gemma's) become tokenizer.ggml.model "llama" with scores (for tokenizer.json,
/// minus the rank of the merge that makes each piece); byte-level BPE becomes "gpt2" with its merges and the name of
/// llama.cpp's pre-tokenizer for its split regex. Token types: 1 normal, 2 unknown, 3 control (special), 4 user-defined
/// (added, not special), 5 unused (padding up to the model's vocabulary), 6 byte.
/// </summary>
static class GgufTokenizer
{
    /// <summary>The split regexes llama.cpp implements, by the name it gives each pre-tokenizer.</summary>
    static readonly Dictionary<string, string> PreTokenizers = new()
    {
        [@"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"] = "llama-bpe",
        [@"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"] = "qwen2",
        [@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"] = "gpt-2",
    };

    public static void Write(GgufMetadata meta, DecoderConfig c, Tokenizer tok)
    {
        if (tok is HuggingFaceTokenizer { ByteLevel: true } bytes) WriteByteLevel(meta, c, bytes);
        else WriteSentencePiece(meta, c, tok);
        meta.U32("tokenizer.ggml.bos_token_id", (uint)Math.Max(0, tok.BosTokenId >= 0 ? tok.BosTokenId : c.BosTokenId));
        meta.U32("tokenizer.ggml.eos_token_id", (uint)(tok.EosTokenId >= 0 ? tok.EosTokenId : c.EosTokenId));
        meta.Bool("tokenizer.ggml.add_bos_token", tok.AddsBos);
    }

    static void WriteByteLevel(GgufMetadata meta, DecoderConfig c, HuggingFaceTokenizer tok)
    {
        var pattern = string.Join(" | ", tok.SplitPatterns);
        if (!PreTokenizers.TryGetValue(pattern, out var pre))
            throw new SioException($"GGUF export: llama.cpp has no pre-tokenizer for this tokenizer's split regex {pattern} (it knows Llama 3's, Qwen2's and GPT-2's)");
        meta.Str("tokenizer.ggml.model", "gpt2");
        meta.Str("tokenizer.ggml.pre", pre);
        meta.Strings("tokenizer.ggml.tokens", Enumerable.Range(0, c.VocabSize).Select(i => i < tok.VocabSize && tok.Pieces[i].Length > 0 ? tok.Pieces[i] : $"[PAD{i}]").ToList());
        meta.Array("tokenizer.ggml.token_type", GgufMetadata.ValueType.Int32, Types(c, tok, byteTokens: false), (w, v) => w.Write(v));
        meta.Strings("tokenizer.ggml.merges", tok.Merges.Select(m => $"{m.Left} {m.Right}").ToList());
    }

    static void WriteSentencePiece(GgufMetadata meta, DecoderConfig c, Tokenizer tok)
    {
        meta.Str("tokenizer.ggml.model", "llama");
        bool llama2c = tok is SentencePieceBpeTokenizer;
        var pieces = Enumerable.Range(0, c.VocabSize).Select(i => i >= tok.VocabSize || tok.Pieces[i].Length == 0 ? $"[PAD{i}]"
            : llama2c && i == c.BosTokenId ? "<s>" : llama2c && i == c.EosTokenId ? "</s>" : llama2c && i == 0 && tok.IsSpecial(0) ? "<unk>"
            : tok.Pieces[i].Replace(' ', '\u2581')).ToList();
        meta.Strings("tokenizer.ggml.tokens", pieces);
        meta.Array("tokenizer.ggml.scores", GgufMetadata.ValueType.Float32, Scores(c, tok, pieces), (w, v) => w.Write(v));
        meta.Array("tokenizer.ggml.token_type", GgufMetadata.ValueType.Int32, Types(c, tok, byteTokens: true), (w, v) => w.Write(v));
        meta.U32("tokenizer.ggml.unknown_token_id", (uint)Math.Max(0, pieces.IndexOf("<unk>")));
        // SentencePiece's dummy prefix: llama2.c and Llama 2 tokenizers prepend a space, Gemma's do not
        meta.Bool("tokenizer.ggml.add_space_prefix", tok is not HuggingFaceTokenizer hf || hf.AddsSpacePrefix);
    }

    static List<float> Scores(DecoderConfig c, Tokenizer tok, List<string> pieces)
    {
        if (tok is SentencePieceBpeTokenizer spm) return Enumerable.Range(0, c.VocabSize).Select(i => i < spm.Scores.Count ? spm.Scores[i] : -1e9f).ToList();
        if (tok is not HuggingFaceTokenizer hf) return Enumerable.Range(0, c.VocabSize).Select(i => -(float)i).ToList();
        // a piece's score is minus the rank of the first merge that makes it; pieces no merge makes come last
        var rank = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int r = 0; r < hf.Merges.Count; r++) rank.TryAdd(hf.Merges[r].Left + hf.Merges[r].Right, r);
        return pieces.Select(p => rank.TryGetValue(p, out var r) ? -(float)r : -1e9f).ToList();
    }

    static List<int> Types(DecoderConfig c, Tokenizer tok, bool byteTokens) => Enumerable.Range(0, c.VocabSize).Select(i =>
        i >= tok.VocabSize || tok.Pieces[i].Length == 0 ? 5
        : tok.IsSpecial(i) ? (tok.Pieces[i] is "<unk>" || (i == 0 && tok is SentencePieceBpeTokenizer) ? 2 : 3)
        : tok is HuggingFaceTokenizer hf && hf.IsAddedText(i) ? 4
        : byteTokens && Tokenizer.TryByteToken(tok.Pieces[i], out _) ? 6 : 1).ToList();
}
