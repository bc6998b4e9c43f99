using Microsoft.ML.Tokenizers;

namespace Sio.Tokenization;

/// <summary>A SentencePiece <c>tokenizer.model</c>, encoded by Microsoft.ML.Tokenizers' LlamaTokenizer.</summary>
public sealed class SentencePieceModelTokenizer : Tokenizer
{
    readonly LlamaTokenizer _inner;

    SentencePieceModelTokenizer(LlamaTokenizer inner, IReadOnlyList<string> pieces)
        : base(pieces, inner.BeginningOfSentenceId, inner.EndOfSentenceId, [inner.UnknownId, inner.BeginningOfSentenceId, inner.EndOfSentenceId])
        => _inner = inner;

    public override string Format => "tokenizer.model";

    /// <param name="vocabSize">The model's vocabulary, when padded beyond the tokenizer's (Phi-3: 32,064 over 32,000): the extra ids decode to nothing.</param>
    public static SentencePieceModelTokenizer Load(string path, int vocabSize = 0)
    {
        if (!File.Exists(path)) throw SioException.InFile(path, "tokenizer file not found");
        LlamaTokenizer inner;
        try
        {
            using var s = File.OpenRead(path);
            inner = LlamaTokenizer.Create(s, addBeginOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not SioException)
        {
            throw SioException.InFile(path, $"not a SentencePiece model ({e.Message})");
        }
        var vocab = inner.Vocabulary;
        var pieces = new string[Math.Max(vocabSize, vocab.Values.Max() + 1)];
        Array.Fill(pieces, "");
        foreach (var (piece, id) in vocab) pieces[id] = piece.Replace('\u2581', ' ');
        return new SentencePieceModelTokenizer(inner, pieces);
    }

    protected override void EncodeText(string text, List<int> output) => output.AddRange(_inner.EncodeToIds(text));
}
