namespace Sio.Templating;

/// <summary>
/// Operators with the reference's rules: == is JavaScript's loose equality; + joins strings (with anything) and
/// lists; ~ always joins as strings; arithmetic is double arithmetic that keeps int unless a float takes part;
/// in works on lists (strict equality), strings and dict keys; comparisons take numbers only.
/// </summary>
internal static class TemplateOperators
{
    public static TemplateValue Binary(string op, TemplateValue left, TemplateValue right)
    {
        if (op == "==") return BoolValue.Of(Js.LooseEquals(left, right));
        if (op == "!=") return BoolValue.Of(!Js.LooseEquals(left, right));
        bool isIn = op is "in" or "not in";
        if (left is UndefinedValue || right is UndefinedValue)
        {
            if (right is UndefinedValue && isIn) return BoolValue.Of(op == "not in");
            throw new TemplateError($"cannot apply '{op}' to an undefined value");
        }
        if (left is NoneValue || right is NoneValue) throw new TemplateError($"cannot apply '{op}' to none");
        if (op == "~") return new StringValue(Js.RawString(left) + Js.RawString(right));
        if (op == "**" && NumericLike(left) is double a && NumericLike(right) is double b) return Power(left, right, a, b);
        if (left is NumberValue x && right is NumberValue y)
        {
            if (Arithmetic(op, x, y) is { } result) return result;
        }
        else if (left is ListValue l1 && right is ListValue l2)
        {
            if (op == "+") return new ListValue([.. l1.Items, .. l2.Items]);
        }
        else if (right is ListValue list && isIn)
        {
            return BoolValue.Of(list.Items.Any(item => Js.StrictEquals(item, left)) == (op == "in"));
        }
        if (op == "+" && (left is StringValue || right is StringValue)) return new StringValue(Js.RawString(left) + Js.RawString(right));
        if (isIn && left is StringValue needle && right is StringValue hay) return BoolValue.Of(hay.Value.Contains(needle.Value, StringComparison.Ordinal) == (op == "in"));
        if (isIn && left is StringValue key && right is DictValue { IsObject: true } dict) return BoolValue.Of(dict.Map.ContainsKey(key.Value) == (op == "in"));
        throw new TemplateError($"unsupported operator '{op}' between {left.Described} and {right.Described}");
    }

    /// <summary>The number behind an int, float or bool (which counts as 0 or 1), or null.</summary>
    public static double? NumericLike(TemplateValue v) => v switch
    {
        NumberValue n => n.Value,
        BoolValue b => b.Value ? 1 : 0,
        _ => null,
    };

    private static NumberValue Power(TemplateValue left, TemplateValue right, double a, double b)
    {
        if (a == 0 && b < 0) throw new TemplateError("0.0 cannot be raised to a negative power");
        double result = Math.Pow(a, b);
        if (!double.IsFinite(result)) throw new TemplateError("exponentiation result is not a finite number");
        bool isFloat = left is NumberValue { IsFloat: true } || right is NumberValue { IsFloat: true } || b < 0;
        return new NumberValue(result, isFloat);
    }

    private static TemplateValue? Arithmetic(string op, NumberValue x, NumberValue y)
    {
        double a = x.Value, b = y.Value;
        bool isFloat = x.IsFloat || y.IsFloat;
        return op switch
        {
            "+" => new NumberValue(a + b, isFloat),
            "-" => new NumberValue(a - b, isFloat),
            "*" => new NumberValue(a * b, isFloat),
            "/" => NumberValue.Float(a / b),
            "//" => new NumberValue(Math.Floor(a / b), isFloat),
            "%" => new NumberValue(a % b, isFloat),
            "<" => BoolValue.Of(a < b),
            ">" => BoolValue.Of(a > b),
            "<=" => BoolValue.Of(a <= b),
            ">=" => BoolValue.Of(a >= b),
            _ => null,
        };
    }

    /// <summary>Unary - and +: on numbers and bools (a bool becomes an int).</summary>
    public static NumberValue Sign(string op, TemplateValue operand)
    {
        if (NumericLike(operand) is not double value) throw new TemplateError($"unsupported operator '{op}' for {operand.Described}");
        double result = (op == "-" ? -1 : 1) * value;
        return new NumberValue(result, operand is NumberValue { IsFloat: true });
    }

    /// <summary>Orders two values as the reference's sort does: numbers (and bools) by value, strings case-insensitively unless asked.</summary>
    public static int Compare(TemplateValue a, TemplateValue b, bool caseSensitive)
    {
        if (a is NoneValue && b is NoneValue || a is UndefinedValue && b is UndefinedValue) return 0;
        if (a is NoneValue or UndefinedValue || b is NoneValue or UndefinedValue) throw CannotCompare(a, b);
        if (NumericLike(a) is double x && NumericLike(b) is double y) return x < y ? -1 : x > y ? 1 : 0;
        if (a is StringValue s && b is StringValue t)
        {
            string p = caseSensitive ? s.Value : s.Value.ToLowerInvariant(), q = caseSensitive ? t.Value : t.Value.ToLowerInvariant();
            return Math.Sign(string.CompareOrdinal(p, q));
        }
        throw CannotCompare(a, b);
    }

    private static TemplateError CannotCompare(TemplateValue a, TemplateValue b) => new($"cannot compare {a.Described} with {b.Described}");

    /// <summary>Sorts stably (as Array.prototype.sort does) by Compare, optionally reversed.</summary>
    public static List<T> StableSort<T>(IEnumerable<T> items, Func<T, TemplateValue> key, bool caseSensitive, bool reverse)
    {
        var comparer = Comparer<T>.Create((a, b) => (reverse ? -1 : 1) * Compare(key(a), key(b), caseSensitive));
        try
        {
            return items.OrderBy(i => i, comparer).ToList();
        }
        catch (InvalidOperationException e) when (e.InnerException is TemplateError inner)
        {
            throw new TemplateError(inner.Message);
        }
    }

    /// <summary>Python-style slicing with the reference's clamping rules.</summary>
    public static List<T> Slice<T>(List<T> items, double? start, double? stop, double? step)
    {
        int length = items.Count;
        double by = step ?? 1, direction = Math.Sign(by), from, to;
        if (direction >= 0)
        {
            from = start ?? 0;
            from = from < 0 ? Math.Max(length + from, 0) : Math.Min(from, length);
            to = stop ?? length;
            to = to < 0 ? Math.Max(length + to, 0) : Math.Min(to, length);
        }
        else
        {
            from = start ?? length - 1;
            from = from < 0 ? Math.Max(length + from, -1) : Math.Min(from, length - 1);
            to = stop ?? -1;
            to = to < -1 ? Math.Max(length + to, -1) : Math.Min(to, length - 1);
        }
        var result = new List<T>();
        for (double i = from; direction * i < direction * to; i += by) result.Add(items[(int)i]);
        return result;
    }
}
