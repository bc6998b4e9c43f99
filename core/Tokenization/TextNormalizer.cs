using System.Text.Json;

namespace Sio.Tokenization;

/// <summary>
/// tokenizer.json's "normalizer": the steps applied to plain text before pre-tokenization. sio implements NFC, NFD,
/// Lowercase, Replace (string patterns), Prepend and Sequence; any other kind is refused by name.
/// </summary>
public sealed class TextNormalizer
{
    readonly List<Func<string, string>> _steps = new();

    /// <summary>Whether a step prepends text (SentencePiece's dummy prefix), which the decoder then strips.</summary>
    public bool Prepends { get; private set; }

    public static TextNormalizer Parse(JsonElement node, string source)
    {
        var n = new TextNormalizer();
        if (node.ValueKind is not (JsonValueKind.Null or JsonValueKind.Undefined)) n.Add(node, source);
        return n;
    }

    void Add(JsonElement node, string source)
    {
        var type = TokenizerJson.Type(node, "normalizer", source);
        switch (type)
        {
            case "Sequence":
                foreach (var step in TokenizerJson.Array(node, "normalizers", source)) Add(step, source);
                break;
            case "NFC": _steps.Add(UnicodeNormalizer.ToNfc); break;
            case "NFD": _steps.Add(UnicodeNormalizer.ToNfd); break;
            case "Lowercase": _steps.Add(s => s.ToLowerInvariant()); break;
            case "Replace":
                var (pattern, content) = (TokenizerJson.StringPattern(node, "normalizer Replace", source), TokenizerJson.String(node, "content", source));
                _steps.Add(s => s.Replace(pattern, content, StringComparison.Ordinal));
                break;
            case "Prepend":
                var prefix = TokenizerJson.String(node, "prepend", source);
                Prepends = true;
                _steps.Add(s => s.Length == 0 ? s : prefix + s);
                break;
            default:
                throw SioException.InFile(source, $"unsupported normalizer \"{type}\" (sio implements NFC, NFD, Lowercase, Replace, Prepend, Sequence)");
        }
    }

    public string Apply(string text)
    {
        foreach (var step in _steps) text = step(text);
        return text;
    }
}
