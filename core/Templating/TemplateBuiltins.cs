using System.Globalization;
using System.Text;

namespace Sio.Templating;

/// <summary>
/// Attribute and index access, the methods of strings and dicts, and the global names. Methods behave as in the
/// reference: strip/lstrip/rstrip ignore their argument and strip white space; title and capitalize only raise
/// letters; split follows Python's str.split; lists have no methods (only .length).
/// </summary>
internal static class TemplateBuiltins
{
    /// <summary>target.key / target[key]: dict entries (then dict methods), list and string indexes (negative from the end), methods.</summary>
    public static TemplateValue Member(TemplateValue target, TemplateValue key)
    {
        switch (target)
        {
            case DictValue d when key is StringValue k:
                return d.Map.TryGetValue(k.Value, out var v) ? v : (d.IsObject ? DictMethod(d, k.Value) : null) ?? UndefinedValue.Instance;
            case ListValue or StringValue when key is NumberValue { IsInt: true } n:
                return Index(target, n.Value);
            case StringValue s when key is StringValue name:
                return StringMethod(s, name.Value) ?? UndefinedValue.Instance;
            case ListValue l when key is StringValue { Value: "length" }:
                return NumberValue.Int(l.Items.Count);
            case not DictValue when key is StringValue:
                return UndefinedValue.Instance;
            default:
                throw new TemplateError($"cannot index {target.Described} with {key.Described}");
        }
    }

    private static TemplateValue Index(TemplateValue target, double index)
    {
        int count = target is ListValue l ? l.Items.Count : ((StringValue)target).Value.Length;
        double i = Math.Truncate(index) < 0 ? Math.Truncate(index) + count : Math.Truncate(index);
        if (i < 0 || i >= count) return UndefinedValue.Instance;
        return target is ListValue list ? list.Items[(int)i] : new StringValue(((StringValue)target).Value[(int)i].ToString());
    }

    /// <summary>The scope passed to methods, which do not use one.</summary>
    public static readonly Scope NoScope = new(null);

    private static FunctionValue Method(string name, Func<List<TemplateValue>, TemplateValue> body) => new(name, (args, _) => body(args));

    private static TemplateValue? At(List<TemplateValue> args, int i) => i < args.Count ? args[i] : null;

    public static TemplateValue? StringMethod(StringValue target, string name)
    {
        string s = target.Value;
        return name switch
        {
            "upper" => Method(name, _ => new StringValue(s.ToUpperInvariant())),
            "lower" => Method(name, _ => new StringValue(s.ToLowerInvariant())),
            "strip" => Method(name, _ => new StringValue(Js.Trim(s))),
            "lstrip" => Method(name, _ => new StringValue(Js.TrimStart(s))),
            "rstrip" => Method(name, _ => new StringValue(Js.TrimEnd(s))),
            "title" => Method(name, _ => new StringValue(Title(s))),
            "capitalize" => Method(name, _ => new StringValue(s.Length == 0 ? s : s[..1].ToUpperInvariant() + s[1..])),
            "length" => NumberValue.Int(s.Length),
            "startswith" => Method(name, args => BoolValue.Of(Affix(args, name, p => s.StartsWith(p, StringComparison.Ordinal)))),
            "endswith" => Method(name, args => BoolValue.Of(Affix(args, name, p => s.EndsWith(p, StringComparison.Ordinal)))),
            "split" => Method(name, args => Split(s, args)),
            "replace" => Method(name, args => Replace(s, args)),
            _ => null,
        };
    }

    /// <summary>Upper-cases each ASCII word character that starts a word (JavaScript's /\b\w/g).</summary>
    private static string Title(string s)
    {
        var chars = s.ToCharArray();
        for (int i = 0; i < chars.Length; i++)
        {
            if (IsWord(chars[i]) && (i == 0 || !IsWord(chars[i - 1]))) chars[i] = char.ToUpperInvariant(chars[i]);
        }
        return new string(chars);
    }

    private static bool IsWord(char c) => char.IsAsciiLetterOrDigit(c) || c == '_';

    private static bool Affix(List<TemplateValue> args, string name, Func<string, bool> test) => At(args, 0) switch
    {
        null => throw new TemplateError($"{name}() needs an argument"),
        StringValue p => test(p.Value),
        ListValue l => l.Items.Any(i => i is StringValue p ? test(p.Value) : throw new TemplateError($"{name}() takes strings")),
        var other => throw new TemplateError($"{name}() takes a string or a tuple of strings, not {other.Described}"),
    };

    private static ListValue Split(string s, List<TemplateValue> args)
    {
        var separator = At(args, 0) ?? NoneValue.Instance;
        if (separator is not (StringValue or NoneValue)) throw new TemplateError("split() separator must be a string or none");
        if ((At(args, 1) ?? NumberValue.Int(-1)) is not NumberValue { IsInt: true } max) throw new TemplateError("split() maxsplit must be an integer");
        var parts = separator is StringValue sep ? SplitOn(s, sep.Value, max.Value) : SplitOnSpace(s, max.Value);
        return new ListValue(parts.Select(p => (TemplateValue)new StringValue(p)).ToList());
    }

    private static List<string> SplitOnSpace(string s, double max)
    {
        string text = Js.TrimStart(s);
        var parts = new List<string>();
        for (int i = 0; i < text.Length;)
        {
            if (Js.IsSpace(text[i])) { i++; continue; }
            if (max != -1 && parts.Count >= max) { parts.Add(text[i..]); break; }
            int start = i;
            while (i < text.Length && !Js.IsSpace(text[i])) i++;
            parts.Add(text[start..i]);
        }
        return parts;
    }

    private static List<string> SplitOn(string s, string separator, double max)
    {
        if (separator.Length == 0) throw new TemplateError("split() separator is empty");
        var parts = s.Split(separator).ToList();
        if (max == -1 || parts.Count <= max) return parts;
        int at = max < 0 ? Math.Max(parts.Count + (int)Math.Max(max, -parts.Count), 0) : (int)max;
        return [.. parts.Take(at), string.Join(separator, parts.Skip(at))];
    }

    private static StringValue Replace(string s, List<TemplateValue> args)
    {
        if (args.Count < 2) throw new TemplateError("replace() needs two arguments");
        if (args[0] is not StringValue old || args[1] is not StringValue replacement) throw new TemplateError("replace() arguments must be strings");
        var count = args.Count < 3 ? NoneValue.Instance
            : args[2] is DictValue { Kind: DictKind.Kwargs } kw ? kw.Map.GetValueOrDefault("count") ?? NoneValue.Instance : args[2];
        double? limit = count switch
        {
            NumberValue { IsInt: true } n => n.Value,
            NoneValue => null,
            _ => throw new TemplateError("replace() count must be an integer"),
        };
        return new StringValue(ReplaceText(s, old.Value, replacement.Value, limit is null or < 0 ? double.PositiveInfinity : limit.Value));
    }

    /// <summary>Replaces the first <paramref name="limit"/> occurrences; an empty pattern matches between code points.</summary>
    private static string ReplaceText(string s, string old, string replacement, double limit)
    {
        var sb = new StringBuilder();
        if (old.Length == 0)
        {
            foreach (var codePoint in Js.CodePoints(s))
            {
                if (limit-- > 0) sb.Append(replacement);
                sb.Append(codePoint);
            }
            if (limit > 0) sb.Append(replacement);
            return sb.ToString();
        }
        int pos = 0;
        for (int found; limit > 0 && (found = s.IndexOf(old, pos, StringComparison.Ordinal)) >= 0; limit--)
        {
            sb.Append(s, pos, found - pos).Append(replacement);
            pos = found + old.Length;
        }
        return sb.Append(s, pos, s.Length - pos).ToString();
    }

    public static TemplateValue? DictMethod(DictValue d, string name) => name switch
    {
        "get" => Method(name, args => At(args, 0) is StringValue k
            ? d.Map.GetValueOrDefault(k.Value) ?? At(args, 1) ?? NoneValue.Instance
            : throw new TemplateError("get() key must be a string")),
        "items" => Method(name, _ => Items(d)),
        "keys" => Method(name, _ => new ListValue(d.Map.Keys.Select(k => (TemplateValue)new StringValue(k)).ToList())),
        "values" => Method(name, _ => new ListValue(d.Map.Values.ToList())),
        "dictsort" => Method(name, args => DictSort(d, args)),
        _ => null,
    };

    public static ListValue Items(DictValue d) =>
        new(d.Map.Select(e => (TemplateValue)new ListValue([new StringValue(e.Key), e.Value])).ToList());

    private static ListValue DictSort(DictValue d, List<TemplateValue> args)
    {
        var kwargs = args.OfType<DictValue>().LastOrDefault(a => a.Kind == DictKind.Kwargs)?.Map ?? new();
        var positional = args.Where(a => a is not DictValue { Kind: DictKind.Kwargs }).ToList();
        TemplateValue Option(int i, string key, TemplateValue fallback) => At(positional, i) ?? kwargs.GetValueOrDefault(key) ?? fallback;
        if (Option(0, "case_sensitive", BoolValue.False) is not BoolValue caseSensitive) throw new TemplateError("dictsort() case_sensitive must be a boolean");
        if (Option(1, "by", new StringValue("key")) is not StringValue { Value: "key" or "value" } by) throw new TemplateError("dictsort() by must be 'key' or 'value'");
        if (Option(2, "reverse", BoolValue.False) is not BoolValue reverse) throw new TemplateError("dictsort() reverse must be a boolean");
        int index = by.Value == "key" ? 0 : 1;
        var sorted = TemplateOperators.StableSort(Items(d).Items, item => ((ListValue)item).Items[index], caseSensitive.Value, reverse.Value);
        return new ListValue(sorted);
    }

    // ---- globals

    private static readonly string[] Months =
        ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

    /// <summary>The global names a context variable may not reuse (the reference's; dict is an addition and may be hidden).</summary>
    public static readonly HashSet<string> Reserved =
        ["true", "True", "false", "False", "none", "None", "raise_exception", "range", "strftime_now", "namespace"];

    /// <summary>The scope holding the global names.</summary>
    public static Scope Globals()
    {
        var scope = new Scope(null);
        foreach (var name in new[] { "true", "True" }) scope.Set(name, BoolValue.True);
        foreach (var name in new[] { "false", "False" }) scope.Set(name, BoolValue.False);
        foreach (var name in new[] { "none", "None" }) scope.Set(name, NoneValue.Instance);
        scope.Set("raise_exception", Method("raise_exception", args =>
            throw new SioException($"chat_template: raise_exception: {(At(args, 0) is { } m ? Js.RawString(m) : "")}")));
        scope.Set("range", Method("range", Range));
        scope.Set("strftime_now", Method("strftime_now", args =>
            new StringValue(Strftime(At(args, 0) is StringValue f ? f.Value : throw new TemplateError("strftime_now() needs a format string"), DateTime.Now))));
        scope.Set("namespace", Method("namespace", args => Mapping(args, DictKind.Namespace)));
        scope.Set("dict", Method("dict", args => Mapping(args, DictKind.Object)));
        return scope;
    }

    private static ListValue Range(List<TemplateValue> args)
    {
        if (args.Count > 3 || args.Any(a => a is not NumberValue)) throw new TemplateError("range() takes up to three numbers");
        var n = args.Select(a => ((NumberValue)a).Value).ToList();
        if (n.Count == 0) return new ListValue([]);
        double start = n.Count == 1 ? 0 : n[0], stop = n.Count == 1 ? n[0] : n[1], step = n.Count == 3 ? n[2] : 1;
        if (step == 0) throw new TemplateError("range() step must not be zero");
        if ((stop - start) / step > 10_000_000) throw new TemplateError("range() is too long");
        var items = new List<TemplateValue>();
        for (double i = start; step > 0 ? i < stop : i > stop; i += step) items.Add(new NumberValue(i, isFloat: i % 1 != 0));
        return new ListValue(items);
    }

    /// <summary>The reference's strftime (%Y %m %d %b %B %H %M %%), plus %S; other directives are refused.</summary>
    public static string Strftime(string format, DateTime now)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 == format.Length) { sb.Append(format[i]); continue; }
            char d = format[++i];
            sb.Append(d switch
            {
                'Y' => now.Year.ToString(CultureInfo.InvariantCulture),
                'm' => now.Month.ToString("00", CultureInfo.InvariantCulture),
                'd' => now.Day.ToString("00", CultureInfo.InvariantCulture),
                'b' => Months[now.Month - 1][..3],
                'B' => Months[now.Month - 1],
                'H' => now.Hour.ToString("00", CultureInfo.InvariantCulture),
                'M' => now.Minute.ToString("00", CultureInfo.InvariantCulture),
                'S' => now.Second.ToString("00", CultureInfo.InvariantCulture),
                '%' => "%",
                _ => throw new TemplateError($"unsupported strftime directive '%{d}'"),
            });
        }
        return sb.ToString();
    }

    /// <summary>namespace(...) and dict(...): from a dict or a list of pairs, then keyword arguments.</summary>
    private static DictValue Mapping(List<TemplateValue> args, DictKind kind)
    {
        var positional = args.ToList();
        var kwargs = positional.Count > 0 && positional[^1] is DictValue { Kind: DictKind.Kwargs } k ? k : null;
        if (kwargs is not null) positional.RemoveAt(positional.Count - 1);
        if (positional.Count > 1) throw new TemplateError($"{kind.ToString().ToLowerInvariant()}() takes at most one positional argument");
        var map = new OrderedDictionary<string, TemplateValue>();
        switch (At(positional, 0))
        {
            case null: break;
            case DictValue { IsObject: true } source: foreach (var (key, value) in source.Map) map[key] = value; break;
            case ListValue pairs: foreach (var pair in pairs.Items) AddPair(map, pair); break;
            case var other: throw new TemplateError($"cannot make a namespace from {other.Described}");
        }
        if (kwargs is not null) foreach (var (key, value) in kwargs.Map) map[key] = value;
        return new DictValue(map, kind);
    }

    private static void AddPair(OrderedDictionary<string, TemplateValue> map, TemplateValue pair)
    {
        var items = pair switch
        {
            ListValue l => l.Items,
            StringValue s => Js.CodePoints(s.Value).Select(c => (TemplateValue)new StringValue(c)).ToList(),
            _ => null,
        };
        if (items is not { Count: 2 } || items[0] is not StringValue key) throw new TemplateError("expected a dict or a list of [key, value] pairs");
        map[key.Value] = items[1];
    }
}
