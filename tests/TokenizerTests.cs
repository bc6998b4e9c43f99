using Sio.Evaluation;
using Sio.Tokenization;

namespace Sio.Tests;

[Trait("Category", "fast")]
public class TokenizerTests
{
    static SentencePieceBpeTokenizer Tok512() => SentencePieceBpeTokenizer.FromLlama2c(TestPaths.Tok512, 512);

    [Fact]
    public void Llama2cTokenizerEncodesLikeLlama2c()
    {
        Assert.Equal([1, 403, 407, 261, 378], Tok512().Encode("Once upon a time"));
    }

    [Fact]
    public void EmptyTextIsBosAlone()
    {
        Assert.Equal([1], Tok512().Encode(""));
        Assert.Empty(Tok512().Encode("", addBos: false));
    }

    [Fact]
    public void DecodeInvertsEncodeIncludingByteFallback()
    {
        var tok = Tok512();
        foreach (var text in new[] { "Once upon a time, there was a little girl named Lily.", "Ünïcödé → 日本語 ✓ and emoji 🙂!", "  two  spaces\nnewline" })
        {
            var ids = tok.Encode(text);
            Assert.Equal(text, tok.Decode(ids.Skip(1), previous: ids[0]));
        }
    }

    [Fact]
    public void StreamHoldsBackPartialUtf8()
    {
        var tok = Tok512();
        var ids = tok.Encode("é🙂x");
        var stream = tok.CreateStream(ids[0]);
        var pieces = ids.Skip(1).Select(stream.Decode).ToList();
        Assert.All(pieces, p => Assert.DoesNotContain('\uFFFD', p));
        Assert.Equal("é🙂x", string.Concat(pieces) + stream.Flush());
        Assert.Contains("", pieces); // at least one byte token completed nothing on its own
    }

    [Fact]
    public void WrittenTokenizerJsonEncodesIdenticallyToTokenizerBin()
    {
        var bin = Tok512();
        var dir = TestPaths.TempDir("tokjson");
        try
        {
            var path = Path.Combine(dir, "tokenizer.json");
            bin.WriteTokenizerJson(path);
            var json = HuggingFaceTokenizer.Load(path, 512, 1, 2);
            Assert.Equal(bin.Fingerprint().Length, json.Fingerprint().Length);
            var data = DatasetReader.Read(TestPaths.TinyStoriesDev, 100);
            foreach (var r in data.Records)
            {
                var a = bin.Encode(r.Text!);
                Assert.Equal(a, json.Encode(r.Text!));
                Assert.Equal(bin.Decode(a.Skip(1), 1), json.Decode(a.Skip(1), 1));
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void SentencePieceModelEncodesIdenticallyToTokenizerBin()
    {
        var bin = Tok512();
        var dir = TestPaths.TempDir("spm");
        try
        {
            var path = Path.Combine(dir, "tokenizer.model");
            Reference.SentencePieceModelWriter.Write(bin, path);
            var spm = SentencePieceModelTokenizer.Load(path);
            Assert.Equal("tokenizer.model", spm.Format);
            Assert.Equal([1, 403, 407, 261, 378], spm.Encode("Once upon a time"));
            foreach (var r in DatasetReader.Read(TestPaths.TinyStoriesDev, 50).Records)
            {
                var a = bin.Encode(r.Text!);
                Assert.Equal(a, spm.Encode(r.Text!));
                Assert.Equal(bin.Decode(a.Skip(1), 1), spm.Decode(a.Skip(1), 1));
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void TruncatedTokenizerIsAClearError()
    {
        var dir = TestPaths.TempDir("badtok");
        try
        {
            var path = Path.Combine(dir, "tok.bin");
            File.WriteAllBytes(path, File.ReadAllBytes(TestPaths.Tok512)[..2000]);
            var e = Assert.Throws<SioException>(() => SentencePieceBpeTokenizer.FromLlama2c(path, 512));
            Assert.Contains(path, e.Message);
            Assert.Contains("truncated", e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }
}
