using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Sio.Tokenization;

/// <summary>
/// tokenizer.json's "pre_tokenizer": cuts normalized text into the words BPE sees. sio implements Split (string or
/// regex pattern, every delimiter behaviour), ByteLevel (GPT-2's byte alphabet, with or without its regex), Metaspace,
/// Digits and Sequence; any other kind is refused by name. Regex patterns run on .NET's backtracking engine, which
/// treats the constructs these patterns use (\p{L}, \p{N}, \s, (?i:…), (?!…)) as Oniguruma does.
/// </summary>
public sealed class PreTokenizer
{
    const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
    enum Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

    delegate void Step(string word, bool first, List<string> output);
    readonly List<Step> _steps = new();

    /// <summary>Whether the words are spelled in the byte-level alphabet (ByteLevel pre-tokenizer).</summary>
    public bool ByteLevel { get; private set; }
    /// <summary>The regex patterns that cut words, in order (GPT-2's when ByteLevel uses its own regex): GGUF export names llama.cpp's pre-tokenizer by them.</summary>
    public List<string> Patterns { get; } = new();

    public static PreTokenizer Parse(JsonElement node, string source)
    {
        var p = new PreTokenizer();
        if (node.ValueKind is not (JsonValueKind.Null or JsonValueKind.Undefined)) p.Add(node, source);
        return p;
    }

    /// <summary>The words of one run of plain text; <paramref name="first"/> is true for the run that starts the text.</summary>
    public List<string> Split(string text, bool first)
    {
        var words = new List<string> { text };
        foreach (var step in _steps)
        {
            var next = new List<string>(words.Count * 2);
            foreach (var w in words) step(w, first, next);
            words = next;
        }
        return words;
    }

    void Add(JsonElement node, string source)
    {
        var type = TokenizerJson.Type(node, "pre_tokenizer", source);
        switch (type)
        {
            case "Sequence":
                foreach (var step in TokenizerJson.Array(node, "pretokenizers", source)) Add(step, source);
                break;
            case "Split": AddSplit(node, source); break;
            case "ByteLevel": AddByteLevel(node); break;
            case "Metaspace": AddMetaspace(node, source); break;
            case "Digits":
                bool single = node.TryGetProperty("individual_digits", out var d) && d.ValueKind == JsonValueKind.True;
                var digits = new Regex(@"\p{N}", RegexOptions.CultureInvariant);
                _steps.Add((w, _, o) => Cut(w, digits, single ? Behavior.Isolated : Behavior.Contiguous, o));
                break;
            default:
                throw SioException.InFile(source, $"unsupported pre_tokenizer \"{type}\" (sio implements Split, ByteLevel, Metaspace, Digits, Sequence)");
        }
    }

    void AddSplit(JsonElement node, string source)
    {
        if (node.TryGetProperty("invert", out var inv) && inv.ValueKind == JsonValueKind.True)
            throw SioException.InFile(source, "unsupported pre_tokenizer Split with \"invert\": true");
        var pattern = node.TryGetProperty("pattern", out var p) ? p : default;
        Regex regex;
        if (pattern.ValueKind == JsonValueKind.Object && pattern.TryGetProperty("Regex", out var r) && r.ValueKind == JsonValueKind.String)
        {
            Patterns.Add(r.GetString()!);
            try { regex = new Regex(r.GetString()!, RegexOptions.Compiled | RegexOptions.CultureInvariant); }
            catch (ArgumentException e) { throw SioException.InFile(source, $"pre_tokenizer Split: the regex does not compile ({e.Message})"); }
        }
        else regex = new Regex(Regex.Escape(TokenizerJson.StringPattern(node, "pre_tokenizer Split", source)), RegexOptions.CultureInvariant);
        var behaviorName = node.TryGetProperty("behavior", out var b) && b.ValueKind == JsonValueKind.String ? b.GetString() : null;
        if (!Enum.TryParse<Behavior>(behaviorName, out var behavior))
            throw SioException.InFile(source, $"pre_tokenizer Split: unknown \"behavior\" {behaviorName ?? "(none)"}");
        _steps.Add((w, _, o) => Cut(w, regex, behavior, o));
    }

    void AddByteLevel(JsonElement node)
    {
        bool prefix = node.TryGetProperty("add_prefix_space", out var a) && a.ValueKind == JsonValueKind.True;
        bool useRegex = !node.TryGetProperty("use_regex", out var u) || u.ValueKind != JsonValueKind.False;
        var gpt2 = useRegex ? new Regex(Gpt2Pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant) : null;
        if (useRegex) Patterns.Add(Gpt2Pattern);
        ByteLevel = true;
        _steps.Add((w, first, o) =>
        {
            if (prefix && w.Length > 0 && w[0] != ' ') w = " " + w;
            var parts = new List<string>();
            if (gpt2 is null) parts.Add(w); else Cut(w, gpt2, Behavior.Isolated, parts);
            foreach (var part in parts) o.Add(ByteLevelAlphabet.Spell(Encoding.UTF8.GetBytes(part)));
        });
    }

    void AddMetaspace(JsonElement node, string source)
    {
        var replacement = node.TryGetProperty("replacement", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()! : "\u2581";
        var scheme = node.TryGetProperty("prepend_scheme", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString()!
            : node.TryGetProperty("add_prefix_space", out var a) && a.ValueKind == JsonValueKind.False ? "never" : "always";
        if (scheme is not ("always" or "first" or "never")) throw SioException.InFile(source, $"pre_tokenizer Metaspace: unknown prepend_scheme \"{scheme}\"");
        bool split = !node.TryGetProperty("split", out var sp) || sp.ValueKind != JsonValueKind.False;
        var marker = new Regex(Regex.Escape(replacement), RegexOptions.CultureInvariant);
        _steps.Add((w, first, o) =>
        {
            w = w.Replace(" ", replacement, StringComparison.Ordinal);
            if ((scheme == "always" || (scheme == "first" && first)) && !w.StartsWith(replacement, StringComparison.Ordinal)) w = replacement + w;
            if (split) Cut(w, marker, Behavior.MergedWithNext, o); else o.Add(w);
        });
    }

    /// <summary>Cuts a word at a pattern's matches, keeping, dropping or attaching the matches as the behaviour says.</summary>
    static void Cut(string word, Regex pattern, Behavior behavior, List<string> output)
    {
        int at = 0;
        string? carry = null; // MergedWithNext: the match waiting for the text after it; Contiguous: the run of matches
        foreach (Match m in pattern.Matches(word))
        {
            if (m.Length == 0) continue;
            var gap = word[at..m.Index];
            switch (behavior)
            {
                case Behavior.Removed: Emit(gap); break;
                case Behavior.Isolated: Emit(gap); Emit(m.Value); break;
                case Behavior.MergedWithPrevious: Emit(gap + m.Value); break;
                case Behavior.MergedWithNext: Emit((carry ?? "") + gap); carry = m.Value; break;
                case Behavior.Contiguous:
                    if (gap.Length > 0) { Emit(carry); carry = null; Emit(gap); }
                    carry = (carry ?? "") + m.Value;
                    break;
            }
            at = m.Index + m.Length;
        }
        Emit((behavior is Behavior.MergedWithNext ? carry ?? "" : "") + (behavior is Behavior.Contiguous ? "" : word[at..]));
        if (behavior is Behavior.Contiguous) { Emit(carry); Emit(word[at..]); }

        void Emit(string? s) { if (!string.IsNullOrEmpty(s)) output.Add(s); }
    }
}
