using System.Text;
using System.Text.RegularExpressions;

namespace Sio.Templating;

/// <summary>The kinds of token the lexer produces.</summary>
internal enum TokenKind
{
    Text, Number, String, Name, Equals, LParen, RParen, OpenStatement, CloseStatement, OpenExpression, CloseExpression,
    LBracket, RBracket, LBrace, RBrace, Comma, Dot, Colon, Pipe, Additive, Multiplicative, Power, Comparison, Unary,
    Comment, End,
}

/// <summary>One token and the template line it starts on.</summary>
internal sealed class Token(TokenKind kind, string text, int line)
{
    public TokenKind Kind { get; } = kind;
    public string Text { get; set; } = text;
    public int Line { get; } = line;

    public string Describe() => Kind switch
    {
        TokenKind.End => "end of template",
        TokenKind.Text => "text",
        TokenKind.Comment => "comment",
        TokenKind.String => "string literal",
        _ => $"'{Text}'",
    };
}

/// <summary>
/// Splits a template into tokens the way the reference lexer does with lstrip_blocks and trim_blocks: the source is
/// first rewritten (one trailing newline dropped, blanks before a block tag and the newline after one removed,
/// generation tags removed), then scanned; '-' markers trim the white space next to a tag.
/// </summary>
internal sealed partial class TemplateLexer
{
    private const string Space = @"[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]";

    [GeneratedRegex(@"(?<=^|[\n\r\u2028\u2029])[ \t]*(\{[#%-])")]
    private static partial Regex LstripBlocks();

    [GeneratedRegex(@"([#%-]\})\n")]
    private static partial Regex TrimBlocks();

    [GeneratedRegex("(" + Space + @"*)\{%(-?)" + Space + @"*(?:end)?generation" + Space + @"*(-?)%\}(" + Space + "*)")]
    private static partial Regex GenerationTag();

    private static readonly (string Text, TokenKind Kind)[] Symbols =
    [
        ("{%", TokenKind.OpenStatement), ("%}", TokenKind.CloseStatement), ("{{", TokenKind.OpenExpression),
        ("}}", TokenKind.CloseExpression), ("(", TokenKind.LParen), (")", TokenKind.RParen), ("{", TokenKind.LBrace),
        ("}", TokenKind.RBrace), ("[", TokenKind.LBracket), ("]", TokenKind.RBracket), (",", TokenKind.Comma),
        (".", TokenKind.Dot), (":", TokenKind.Colon), ("|", TokenKind.Pipe), ("<=", TokenKind.Comparison),
        (">=", TokenKind.Comparison), ("==", TokenKind.Comparison), ("!=", TokenKind.Comparison),
        ("<", TokenKind.Comparison), (">", TokenKind.Comparison), ("+", TokenKind.Additive), ("-", TokenKind.Additive),
        ("~", TokenKind.Additive), ("**", TokenKind.Power), ("*", TokenKind.Multiplicative),
        ("//", TokenKind.Multiplicative), ("/", TokenKind.Multiplicative), ("%", TokenKind.Multiplicative),
        ("=", TokenKind.Equals),
    ];

    private readonly string src;
    private readonly int[] lines;
    private readonly List<Token> tokens = [];
    private int pos, curlyDepth;

    private TemplateLexer(string src, int[] lines) => (this.src, this.lines) = (src, lines);

    public static List<Token> Tokenize(string source)
    {
        var (text, lines) = Preprocess(source);
        var lexer = new TemplateLexer(text, lines);
        lexer.Run();
        return lexer.tokens;
    }

    private static (string, int[]) Preprocess(string source)
    {
        var lines = new int[source.Length];
        for (int i = 0, line = 1; i < source.Length; i++)
        {
            lines[i] = line;
            if (source[i] == '\n') line++;
        }
        if (source.EndsWith('\n')) (source, lines) = (source[..^1], lines[..^1]);
        (source, lines) = Rewrite(source, lines, LstripBlocks(), m => [(m.Groups[1].Index, m.Groups[1].Length)]);
        (source, lines) = Rewrite(source, lines, TrimBlocks(), m => [(m.Groups[1].Index, m.Groups[1].Length)]);
        return Rewrite(source, lines, GenerationTag(), KeptAroundGeneration);
    }

    /// <summary>A generation tag disappears; the white space around it stays unless a '-' marker faces it.</summary>
    private static IEnumerable<(int Index, int Length)> KeptAroundGeneration(Match tag)
    {
        var g = tag.Groups;
        if (g[2].Length == 0) yield return (g[1].Index, g[1].Length);
        if (g[3].Length == 0) yield return (g[4].Index, g[4].Length);
    }

    /// <summary>Replaces each match by some of its captures, keeping each character's original line number.</summary>
    private static (string, int[]) Rewrite(string text, int[] lines, Regex regex, Func<Match, IEnumerable<(int Index, int Length)>> keep)
    {
        var sb = new StringBuilder(text.Length);
        var map = new List<int>(text.Length);
        int last = 0;
        void Copy(int from, int length)
        {
            sb.Append(text, from, length);
            map.AddRange(lines.AsSpan(from, length));
        }
        foreach (Match m in regex.Matches(text))
        {
            Copy(last, m.Index - last);
            foreach (var (index, length) in keep(m)) Copy(index, length);
            last = m.Index + m.Length;
        }
        Copy(last, text.Length - last);
        return (sb.ToString(), map.ToArray());
    }

    private int LineAt(int p) => lines.Length == 0 ? 1 : lines[Math.Min(p, lines.Length - 1)];

    private TemplateError Error(string message) => new(message, LineAt(pos));

    private void Add(TokenKind kind, string text, int start) => tokens.Add(new Token(kind, text, LineAt(start)));

    private bool At(string s) => string.CompareOrdinal(src, pos, s, 0, s.Length) == 0;

    private TokenKind? LastKind => tokens.Count > 0 ? tokens[^1].Kind : null;

    private void Run()
    {
        while (pos < src.Length)
        {
            if (LastKind is null or TokenKind.CloseStatement or TokenKind.CloseExpression or TokenKind.Comment && LexText()) continue;
            if (At("{#")) LexComment();
            else if (At("{%-") || At("{{-")) LexTrimmingOpen();
            else LexInsideTag();
        }
    }

    private bool LexText()
    {
        int start = pos;
        while (pos < src.Length && !(src[pos] == '{' && pos + 1 < src.Length && src[pos + 1] is '%' or '{' or '#')) pos++;
        if (pos == start) return false;
        Add(TokenKind.Text, src[start..pos], start);
        return true;
    }

    private void LexComment()
    {
        int start = pos;
        pos += 2;
        bool stripBefore = pos < src.Length && src[pos] == '-';
        if (stripBefore) pos++;
        int from = pos;
        while (!(pos + 1 < src.Length && src[pos] == '#' && src[pos + 1] == '}'))
        {
            if (pos + 2 >= src.Length) throw Error("missing end of comment '#}'");
            pos++;
        }
        string comment = src[from..pos];
        bool stripAfter = comment.EndsWith('-');
        if (stripBefore) StripTrailingWhitespace();
        Add(TokenKind.Comment, stripAfter ? comment[..^1] : comment, start);
        pos += 2;
        if (stripAfter) SkipWhitespace();
    }

    private void LexTrimmingOpen()
    {
        StripTrailingWhitespace();
        bool statement = src[pos + 1] == '%';
        Add(statement ? TokenKind.OpenStatement : TokenKind.OpenExpression, statement ? "{%" : "{{", pos);
        if (!statement) curlyDepth = 0;
        pos += 3;
    }

    private void StripTrailingWhitespace()
    {
        if (LastKind != TokenKind.Text) return;
        tokens[^1].Text = Js.TrimEnd(tokens[^1].Text);
        if (tokens[^1].Text.Length == 0) tokens.RemoveAt(tokens.Count - 1);
    }

    private void SkipWhitespace()
    {
        while (pos < src.Length && Js.IsSpace(src[pos])) pos++;
    }

    private void LexInsideTag()
    {
        SkipWhitespace();
        if (pos >= src.Length) throw Error("unexpected end of template inside a tag");
        if (At("-%}") || At("-}}"))
        {
            bool statement = src[pos + 1] == '%';
            Add(statement ? TokenKind.CloseStatement : TokenKind.CloseExpression, statement ? "%}" : "}}", pos);
            pos += 3;
            SkipWhitespace();
            return;
        }
        char c = src[pos];
        if (c is '-' or '+' && LexSign(c)) return;
        if (LexSymbol()) return;
        if (c is '\'' or '"') LexString(c);
        else if (char.IsAsciiDigit(c)) LexNumber();
        else if (IsWordChar(c)) Add(TokenKind.Name, ConsumeWhile(IsWordChar), pos);
        else throw Error($"unexpected character '{c}'");
    }

    private static bool IsWordChar(char c) => char.IsAsciiLetterOrDigit(c) || c == '_';

    /// <summary>After an operand '-' and '+' are binary; elsewhere they sign a number literal or are unary.</summary>
    private bool LexSign(char sign)
    {
        if (LastKind is null or TokenKind.Text) throw Error($"unexpected character '{sign}'");
        if (LastKind is TokenKind.Name or TokenKind.Number or TokenKind.String or TokenKind.RParen or TokenKind.RBracket) return false;
        int start = pos++;
        string number = ConsumeWhile(char.IsAsciiDigit);
        if (number.Length > 0 && At(".") && pos + 1 < src.Length && char.IsAsciiDigit(src[pos + 1]))
        {
            pos++;
            number += "." + ConsumeWhile(char.IsAsciiDigit);
        }
        Add(number.Length > 0 ? TokenKind.Number : TokenKind.Unary, sign + number, start);
        return true;
    }

    private bool LexSymbol()
    {
        foreach (var (text, kind) in Symbols)
        {
            if (text == "}}" && curlyDepth > 0 || !At(text)) continue;
            Add(kind, text, pos);
            if (kind == TokenKind.OpenExpression) curlyDepth = 0;
            else if (kind == TokenKind.LBrace) curlyDepth++;
            else if (kind == TokenKind.RBrace) curlyDepth--;
            pos += text.Length;
            return true;
        }
        return false;
    }

    private void LexNumber()
    {
        int start = pos;
        string number = ConsumeWhile(char.IsAsciiDigit);
        if (LastKind != TokenKind.Dot && At(".") && pos + 1 < src.Length && char.IsAsciiDigit(src[pos + 1]))
        {
            pos++;
            number += "." + ConsumeWhile(char.IsAsciiDigit);
        }
        Add(TokenKind.Number, number, start);
    }

    /// <summary>Reads characters while the predicate holds; like the reference, running into the end is an error.</summary>
    private string ConsumeWhile(Func<char, bool> predicate)
    {
        int start = pos;
        while (pos < src.Length && predicate(src[pos]))
        {
            if (++pos >= src.Length) throw Error("unexpected end of template");
        }
        return src[start..pos];
    }

    private void LexString(char quote)
    {
        int start = pos++;
        var sb = new StringBuilder();
        while (true)
        {
            if (pos >= src.Length) throw new TemplateError("unterminated string literal", LineAt(start));
            char c = src[pos++];
            if (c == quote) break;
            sb.Append(c == '\\' ? Unescape() : c.ToString());
        }
        Add(TokenKind.String, sb.ToString(), start);
    }

    private string Unescape()
    {
        if (pos >= src.Length) throw Error("unterminated string literal");
        char e = src[pos++];
        if (e is 'x' or 'u')
        {
            int length = e == 'x' ? 2 : 4;
            string hex = pos + length <= src.Length ? src.Substring(pos, length) : "";
            if (hex.Length != length || !hex.All(char.IsAsciiHexDigit)) throw Error($"invalid escape sequence '\\{e}{hex}'");
            pos += length;
            return ((char)Convert.ToInt32(hex, 16)).ToString();
        }
        return e switch
        {
            'n' => "\n",
            't' => "\t",
            'r' => "\r",
            'b' => "\b",
            'f' => "\f",
            'v' => "\v",
            '\'' => "'",
            '"' => "\"",
            '\\' => "\\",
            _ => throw Error($"unexpected escape sequence '\\{e}'"),
        };
    }
}
