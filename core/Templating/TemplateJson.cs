using System.Runtime.CompilerServices;
using System.Text;

namespace Sio.Templating;

/// <summary>The options of the tojson filter.</summary>
internal sealed record JsonOptions(int Indent, bool EnsureAscii, bool SortKeys, string? ItemSeparator, string? KeySeparator)
{
    public static readonly JsonOptions Default = new(0, false, false, null, null);
}

/// <summary>
/// JSON text as the reference's tojson (and its printing of lists and dicts) writes it: ", " and ": " separators
/// on one line, or "," with newlines when indented; key order kept; non-ASCII kept unless ensure_ascii.
/// </summary>
internal static class TemplateJson
{
    public static string Serialize(TemplateValue value, JsonOptions options, bool undefinedAsNull)
    {
        var sb = new StringBuilder();
        Write(sb, value, options, 0, undefinedAsNull);
        return sb.ToString();
    }

    private static void Write(StringBuilder sb, TemplateValue value, JsonOptions options, int depth, bool undefinedAsNull)
    {
        if (!RuntimeHelpers.TryEnsureSufficientExecutionStack()) throw new TemplateError("value is nested too deeply for JSON");
        switch (value)
        {
            case NoneValue: sb.Append("null"); break;
            case UndefinedValue: sb.Append(undefinedAsNull ? "null" : "undefined"); break;
            case BoolValue b: sb.Append(b.Value ? "true" : "false"); break;
            case NumberValue n: sb.Append(double.IsFinite(n.Value) ? Js.NumberToString(n.Value) : "null"); break;
            case StringValue s: Js.AppendJsonString(sb, s.Value, options.EnsureAscii); break;
            case ListValue { IsTuple: false } l: WriteList(sb, l.Items, options, depth, undefinedAsNull); break;
            case DictValue { Kind: not DictKind.Kwargs } d: WriteDict(sb, d, options, depth, undefinedAsNull); break;
            default: throw new TemplateError($"cannot convert {value.Described} to JSON");
        }
    }

    private static (string Item, string Key) Separators(JsonOptions o) =>
        (o.ItemSeparator ?? (o.Indent > 0 ? "," : ", "), o.KeySeparator ?? ": ");

    private static void NewLine(StringBuilder sb, JsonOptions options, int depth) =>
        sb.Append('\n').Append(' ', options.Indent * depth);

    private static void WriteList(StringBuilder sb, List<TemplateValue> items, JsonOptions options, int depth, bool undefinedAsNull)
    {
        var (itemSeparator, _) = Separators(options);
        bool indented = options.Indent > 0 && items.Count > 0;
        sb.Append('[');
        for (int i = 0; i < items.Count; i++)
        {
            if (i > 0) sb.Append(itemSeparator);
            if (indented) NewLine(sb, options, depth + 1);
            Write(sb, items[i], options, depth + 1, undefinedAsNull);
        }
        if (indented) NewLine(sb, options, depth);
        sb.Append(']');
    }

    private static void WriteDict(StringBuilder sb, DictValue dict, JsonOptions options, int depth, bool undefinedAsNull)
    {
        var (itemSeparator, keySeparator) = Separators(options);
        IEnumerable<KeyValuePair<string, TemplateValue>> entries = dict.Map;
        if (options.SortKeys) entries = entries.OrderBy(e => e.Key, KeyOrder.Instance);
        bool any = false;
        sb.Append('{');
        foreach (var (key, item) in entries)
        {
            if (any) sb.Append(itemSeparator);
            any = true;
            if (options.Indent > 0) NewLine(sb, options, depth + 1);
            Js.AppendJsonString(sb, key, options.EnsureAscii);
            sb.Append(keySeparator);
            Write(sb, item, options, depth + 1, undefinedAsNull);
        }
        if (any && options.Indent > 0) NewLine(sb, options, depth);
        sb.Append('}');
    }

    /// <summary>
    /// Approximates String.prototype.localeCompare (ICU root collation), which sort_keys uses: exact for ASCII keys
    /// (punctuation, then digits, then letters without regard to case, lower case first on a tie); other characters
    /// sort after ASCII by code.
    /// </summary>
    private sealed class KeyOrder : IComparer<string>
    {
        public static readonly KeyOrder Instance = new();
        private const string Ascii = " _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$0123456789abcdefghijklmnopqrstuvwxyz";

        private static int Primary(char c)
        {
            int i = c < 128 ? Ascii.IndexOf(char.ToLowerInvariant(c)) : -1;
            return i >= 0 ? i : 1000 + c;
        }

        public int Compare(string? a, string? b)
        {
            a ??= "";
            b ??= "";
            for (int i = 0; i < Math.Min(a.Length, b.Length); i++)
            {
                int c = Primary(a[i]).CompareTo(Primary(b[i]));
                if (c != 0) return c;
            }
            if (a.Length != b.Length) return a.Length.CompareTo(b.Length);
            for (int i = 0; i < a.Length; i++)
            {
                if (a[i] != b[i]) return char.IsLower(a[i]) ? -1 : char.IsLower(b[i]) ? 1 : a[i].CompareTo(b[i]);
            }
            return 0;
        }
    }
}
