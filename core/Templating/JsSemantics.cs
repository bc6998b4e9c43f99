using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.RegularExpressions;

namespace Sio.Templating;

/// <summary>
/// The JavaScript behaviours the reference renderer inherits and a chat template can observe: which characters are
/// white space, how numbers print, truthiness, loose (==) and strict equality, and how values turn into strings.
/// </summary>
internal static partial class Js
{
    /// <summary>JavaScript's \s: white space and line terminators.</summary>
    public static bool IsSpace(char c) => c switch
    {
        '\t' or '\n' or '\v' or '\f' or '\r' or ' ' or '\u00a0' or '\u1680' or '\u2028' or '\u2029' or '\u202f'
            or '\u205f' or '\u3000' or '\ufeff' => true,
        _ => c >= '\u2000' && c <= '\u200a',
    };

    public static string TrimStart(string s)
    {
        int i = 0;
        while (i < s.Length && IsSpace(s[i])) i++;
        return s[i..];
    }

    public static string TrimEnd(string s)
    {
        int i = s.Length;
        while (i > 0 && IsSpace(s[i - 1])) i--;
        return s[..i];
    }

    public static string Trim(string s) => TrimStart(TrimEnd(s));

    /// <summary>Number.prototype.toString(): shortest round-trip digits, exponent form outside [1e-7, 1e21).</summary>
    public static string NumberToString(double d)
    {
        if (double.IsNaN(d)) return "NaN";
        if (double.IsInfinity(d)) return d > 0 ? "Infinity" : "-Infinity";
        if (d == 0) return "0";
        var (digits, n) = Decompose(Math.Abs(d));
        string sign = d < 0 ? "-" : "";
        int k = digits.Length;
        if (k <= n && n <= 21) return sign + digits + new string('0', n - k);
        if (0 < n && n <= 21) return sign + digits[..n] + "." + digits[n..];
        if (-6 < n && n <= 0) return sign + "0." + new string('0', -n) + digits;
        string exponent = n - 1 >= 0 ? "+" + (n - 1) : (n - 1).ToString(CultureInfo.InvariantCulture);
        return sign + digits[0] + (k > 1 ? "." + digits[1..] : "") + "e" + exponent;
    }

    /// <summary>The shortest digits of a positive double and the position n of the decimal point: 0.DIGITS × 10^n.</summary>
    private static (string Digits, int PointPosition) Decompose(double d)
    {
        string r = d.ToString("R", CultureInfo.InvariantCulture);
        int e = r.IndexOf('E');
        string mantissa = e < 0 ? r : r[..e];
        int exponent = e < 0 ? 0 : int.Parse(r[(e + 1)..], CultureInfo.InvariantCulture);
        int dot = mantissa.IndexOf('.');
        string digits = mantissa.Replace(".", "");
        int point = (dot < 0 ? mantissa.Length : dot) + exponent;
        int lead = 0;
        while (lead < digits.Length - 1 && digits[lead] == '0') { lead++; point--; }
        return (digits[lead..].TrimEnd('0'), point);
    }

    /// <summary>How the reference prints a float: integral values keep one decimal ("2.0"), -0 prints "-0.0".</summary>
    public static string FloatToString(double d)
    {
        if (d == 0 && double.IsNegative(d)) return "-0.0";
        if (!double.IsFinite(d) || d % 1 != 0) return NumberToString(d);
        if (Math.Abs(d) >= 1e21) return NumberToString(d);
        return new BigInteger(d).ToString(CultureInfo.InvariantCulture) + ".0";
    }

    /// <summary>
    /// What {{ value }} prints (the reference's toString()); none and undefined are skipped by the caller, and show
    /// only inside a list joined as a string, where both read "undefined" (the reference's none wraps undefined).
    /// </summary>
    public static string Display(TemplateValue value) => value switch
    {
        StringValue s => s.Value,
        NumberValue { IsFloat: true } n => FloatToString(n.Value),
        NumberValue n => NumberToString(n.Value),
        BoolValue b => b.Value ? "true" : "false",
        NoneValue or UndefinedValue => "undefined",
        ListValue or DictValue => TemplateJson.Serialize(value, JsonOptions.Default, undefinedAsNull: false),
        _ => throw new TemplateError($"cannot print {value.Described}"),
    };

    /// <summary>
    /// JavaScript's String(raw value), used by ~, string +, and join: numbers print without ".0", a list joins its
    /// items' printed forms with commas, a dict is "[object Map]". none and undefined give "" (as Array.join does).
    /// </summary>
    public static string RawString(TemplateValue value) => value switch
    {
        StringValue s => s.Value,
        NumberValue n => NumberToString(n.Value),
        BoolValue b => b.Value ? "true" : "false",
        NoneValue or UndefinedValue => "",
        ListValue l => string.Join(",", l.Items.Select(Display)),
        DictValue => "[object Map]",
        _ => throw new TemplateError($"cannot convert {value.Described} to a string"),
    };

    /// <summary>Python-style truth (the reference's __bool__): empty lists and dicts are false, namespaces true.</summary>
    public static bool Truthy(TemplateValue value) => value switch
    {
        BoolValue b => b.Value,
        NumberValue n => n.Value != 0 && !double.IsNaN(n.Value),
        StringValue s => s.Value.Length > 0,
        ListValue l => l.Items.Count > 0,
        DictValue d => d.Kind == DictKind.Namespace || d.Map.Count > 0,
        FunctionValue => true,
        _ => false,
    };

    /// <summary>JavaScript truth of the raw value: every list or dict is true.</summary>
    public static bool RawTruthy(TemplateValue value) => value is ListValue or DictValue || Truthy(value);

    private static bool IsObject(TemplateValue v) => v is ListValue or DictValue or FunctionValue;

    /// <summary>The identity of the raw JavaScript object behind a list, dict or function.</summary>
    private static object RawObject(TemplateValue v) => v switch
    {
        ListValue l => l.Items,
        DictValue d => d.Map,
        _ => v,
    };

    /// <summary>JavaScript's == on the raw values, which the reference uses for == and !=.</summary>
    public static bool LooseEquals(TemplateValue a, TemplateValue b)
    {
        switch (a, b)
        {
            case (NumberValue x, NumberValue y): return x.Value == y.Value;
            case (StringValue x, StringValue y): return x.Value == y.Value;
            case (BoolValue x, BoolValue y): return x.Value == y.Value;
        }
        bool aNullish = a is NoneValue or UndefinedValue, bNullish = b is NoneValue or UndefinedValue;
        if (aNullish || bNullish) return aNullish && bNullish;
        if (IsObject(a) && IsObject(b)) return ReferenceEquals(RawObject(a), RawObject(b));
        if (a is BoolValue ab) return LooseEquals(NumberValue.Int(ab.Value ? 1 : 0), b);
        if (b is BoolValue bb) return LooseEquals(a, NumberValue.Int(bb.Value ? 1 : 0));
        if (a is NumberValue an && b is StringValue bs) return an.Value == ToNumber(bs.Value);
        if (a is StringValue @as && b is NumberValue bn) return ToNumber(@as.Value) == bn.Value;
        if (IsObject(a)) return LooseEquals(new StringValue(ToPrimitive(a)), b);
        return LooseEquals(a, new StringValue(ToPrimitive(b)));
    }

    private static string ToPrimitive(TemplateValue v) =>
        v is FunctionValue ? throw new TemplateError("cannot compare a function") : RawString(v);

    /// <summary>JavaScript's === on the raw values (used by in, unique and the eq test); none's raw value is undefined.</summary>
    public static bool StrictEquals(TemplateValue a, TemplateValue b) => (a, b) switch
    {
        (NumberValue x, NumberValue y) => x.Value == y.Value,
        (StringValue x, StringValue y) => x.Value == y.Value,
        (BoolValue x, BoolValue y) => x.Value == y.Value,
        (NoneValue or UndefinedValue, NoneValue or UndefinedValue) => true,
        _ => IsObject(a) && IsObject(b) && ReferenceEquals(RawObject(a), RawObject(b)),
    };

    /// <summary>A key for a set of raw values under SameValueZero (what a JavaScript Set uses).</summary>
    public static object SetKey(TemplateValue v) => v switch
    {
        NumberValue n => double.IsNaN(n.Value) ? double.NaN : n.Value + 0.0,
        StringValue s => s.Value,
        BoolValue b => b.Value,
        NoneValue or UndefinedValue => UndefinedValue.Instance,
        _ => RawObject(v),
    };

    /// <summary>The code points of a string as strings (Array.from(string)); lone surrogates stand alone.</summary>
    public static List<string> CodePoints(string s)
    {
        var result = new List<string>(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            bool pair = char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]);
            result.Add(pair ? s.Substring(i++, 2) : s[i].ToString());
        }
        return result;
    }

    [GeneratedRegex(@"^[+-]?(Infinity|([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?)")]
    private static partial Regex FloatPrefix();

    [GeneratedRegex(@"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")]
    private static partial Regex DecimalLiteral();

    /// <summary>parseFloat: the longest decimal prefix after leading white space, or NaN.</summary>
    public static double ParseFloat(string s)
    {
        var m = FloatPrefix().Match(TrimStart(s));
        return m.Success ? ParseDecimal(m.Value) : double.NaN;
    }

    /// <summary>parseInt(s, 10): optional sign and the leading digits after white space, or NaN.</summary>
    public static double ParseInt(string s)
    {
        string t = TrimStart(s);
        int i = t.Length > 0 && t[0] is '+' or '-' ? 1 : 0, start = i;
        while (i < t.Length && char.IsAsciiDigit(t[i])) i++;
        if (i == start) return double.NaN;
        double value = double.Parse(t[start..i], CultureInfo.InvariantCulture);
        return t[0] == '-' ? -value : value;
    }

    /// <summary>Number(string), as == applies it when comparing a string with a number.</summary>
    private static double ToNumber(string s)
    {
        string t = Trim(s);
        if (t.Length == 0) return 0;
        if (t.Length > 2 && t[0] == '0' && t[1] is 'x' or 'X' or 'o' or 'O' or 'b' or 'B') return ParseRadix(t);
        return t is "Infinity" or "+Infinity" or "-Infinity" || DecimalLiteral().IsMatch(t) ? ParseDecimal(t) : double.NaN;
    }

    private static double ParseRadix(string t)
    {
        int radix = char.ToLowerInvariant(t[1]) switch { 'x' => 16, 'o' => 8, _ => 2 };
        double value = 0;
        foreach (char c in t[2..])
        {
            int digit = char.IsAsciiHexDigit(c) ? Convert.ToInt32(c.ToString(), 16) : 99;
            if (digit >= radix) return double.NaN;
            value = value * radix + digit;
        }
        return value;
    }

    private static double ParseDecimal(string t)
    {
        if (t.EndsWith("Infinity", StringComparison.Ordinal)) return t[0] == '-' ? double.NegativeInfinity : double.PositiveInfinity;
        return double.Parse(t, NumberStyles.Float, CultureInfo.InvariantCulture);
    }

    /// <summary>Appends a JSON string literal as JSON.stringify writes it; with ensureAscii, U+007F and above become \uXXXX.</summary>
    public static void AppendJsonString(StringBuilder sb, string s, bool ensureAscii)
    {
        sb.Append('"');
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            bool lone = char.IsHighSurrogate(c) ? !(i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
                : char.IsLowSurrogate(c) && !(i > 0 && char.IsHighSurrogate(s[i - 1]));
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < ' ' || lone || (ensureAscii && c >= '\x7f')) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
