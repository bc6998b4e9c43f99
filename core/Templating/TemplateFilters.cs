namespace Sio.Templating;

/// <summary>
/// The filters. As in the reference, "x | f" and "x | f(...)" are looked up separately and per operand type, so
/// e.g. default needs parentheses and trim takes none. Additions over the reference: count, d, round.
/// </summary>
internal static class TemplateFilters
{
    private static readonly HashSet<string> Known =
    [
        "safe", "tojson", "list", "first", "last", "length", "count", "reverse", "sort", "join", "string", "unique",
        "upper", "lower", "title", "capitalize", "trim", "indent", "int", "float", "abs", "items", "keys", "values",
        "get", "dictsort", "bool", "default", "d", "selectattr", "rejectattr", "map", "replace", "round",
    ];

    public static TemplateValue Apply(TemplateRenderer renderer, TemplateValue operand, FilterExpr filter, Scope scope) =>
        filter.Args is null ? Plain(operand, filter.Name) : WithArgs(renderer, operand, filter, scope);

    private static TemplateError Unsupported(string name, TemplateValue operand) =>
        new(Known.Contains(name) ? $"filter '{name}' cannot be applied to {operand.Described}" : $"unsupported filter '{name}'");

    private static StringValue Str(string s) => new(s);

    // ---- x | name

    private static TemplateValue Plain(TemplateValue operand, string name)
    {
        if (name == "safe") return operand;
        if (name == "tojson") return Str(TemplateJson.Serialize(operand, JsonOptions.Default, undefinedAsNull: true));
        return operand switch
        {
            ListValue l => PlainList(l, name),
            StringValue s => PlainString(s, name),
            NumberValue n => PlainNumber(n, name),
            DictValue { IsObject: true } d => PlainDict(d, name),
            BoolValue b => name switch
            {
                "bool" => b,
                "int" => NumberValue.Int(b.Value ? 1 : 0),
                "float" => NumberValue.Float(b.Value ? 1 : 0),
                "string" => Str(b.Value ? "true" : "false"),
                _ => throw Unsupported(name, b),
            },
            _ => throw Unsupported(name, operand),
        };
    }

    private static TemplateValue PlainList(ListValue l, string name) => name switch
    {
        "list" => l,
        "first" => l.Items.Count > 0 ? l.Items[0] : throw new TemplateError("'first' of an empty list"),
        "last" => l.Items.Count > 0 ? l.Items[^1] : throw new TemplateError("'last' of an empty list"),
        "length" or "count" => NumberValue.Int(l.Items.Count),
        "reverse" => new ListValue(Enumerable.Reverse(l.Items).ToList()),
        "sort" => new ListValue(TemplateOperators.StableSort(l.Items, v => v, caseSensitive: false, reverse: false)),
        "join" => Str(string.Concat(l.Items.Select(Js.RawString))),
        "string" => Str(TemplateJson.Serialize(l, JsonOptions.Default, undefinedAsNull: false)),
        "unique" => Unique(l),
        _ => throw Unsupported(name, l),
    };

    private static ListValue Unique(ListValue l)
    {
        var seen = new HashSet<object>();
        return new ListValue(l.Items.Where(item => seen.Add(Js.SetKey(item))).ToList());
    }

    private static TemplateValue PlainString(StringValue s, string name) => name switch
    {
        "length" or "count" => NumberValue.Int(s.Value.Length),
        "upper" or "lower" or "title" or "capitalize" => CallMethod(TemplateBuiltins.StringMethod(s, name), []),
        "trim" => Str(Js.Trim(s.Value)),
        "indent" => Str(Indent(s.Value, 4, first: false, blank: false)),
        "join" or "string" => s,
        "int" => NumberValue.Int(Js.ParseInt(s.Value) is var i && double.IsNaN(i) ? 0 : i),
        "float" => NumberValue.Float(Js.ParseFloat(s.Value) is var f && double.IsNaN(f) ? 0 : f),
        _ => throw Unsupported(name, s),
    };

    private static TemplateValue PlainNumber(NumberValue n, string name) => name switch
    {
        "abs" => new NumberValue(Math.Abs(n.Value), n.IsFloat),
        "int" => NumberValue.Int(Math.Floor(n.Value)),
        "float" => NumberValue.Float(n.Value),
        "string" => Str(Js.Display(n)),
        "round" => Round(n, 0, "common"),
        _ => throw Unsupported(name, n),
    };

    private static TemplateValue PlainDict(DictValue d, string name) => name switch
    {
        "items" => TemplateBuiltins.Items(d),
        "length" or "count" => NumberValue.Int(d.Map.Count),
        _ => TemplateBuiltins.DictMethod(d, name) is FunctionValue method ? CallMethod(method, []) : throw Unsupported(name, d),
    };

    private static string Indent(string s, int width, bool first, bool blank)
    {
        if (width is < 0 or > 1000) throw new TemplateError("indent width is out of range");
        string pad = new(' ', width);
        var lines = s.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            bool keep = (!first && i == 0) || (!blank && lines[i].Length == 0);
            if (!keep) lines[i] = pad + lines[i];
        }
        return string.Join('\n', lines);
    }

    /// <summary>Python's round filter without precision: half to even, or floor/ceil (which give floats).</summary>
    private static NumberValue Round(NumberValue n, double precision, string method)
    {
        if (precision != 0) throw new TemplateError("round with a precision is not supported");
        return method switch
        {
            "common" => new NumberValue(Math.Round(n.Value, MidpointRounding.ToEven), n.IsFloat),
            "floor" => NumberValue.Float(Math.Floor(n.Value)),
            "ceil" => NumberValue.Float(Math.Ceiling(n.Value)),
            _ => throw new TemplateError("round method must be 'common', 'floor' or 'ceil'"),
        };
    }

    // ---- x | name(args)

    private sealed record Args(List<TemplateValue> Positional, OrderedDictionary<string, TemplateValue> Keywords)
    {
        public TemplateValue? Get(int i, string? keyword = null) =>
            i < Positional.Count ? Positional[i] : keyword is null ? null : Keywords.GetValueOrDefault(keyword);

        public List<TemplateValue> WithKeywords() =>
            Keywords.Count > 0 ? [.. Positional, new DictValue(Keywords, DictKind.Kwargs)] : Positional;
    }

    private static TemplateValue WithArgs(TemplateRenderer renderer, TemplateValue operand, FilterExpr filter, Scope scope)
    {
        string name = filter.Name;
        Args Evaluate() { var (p, k) = renderer.EvalArgs(filter.Args!, scope); return new Args(p, k); }
        switch (name)
        {
            case "tojson": return ToJson(operand, Evaluate());
            case "join": return Join(operand, Evaluate);
            case "int" or "float": return ToNumber(operand, name, Evaluate());
            case "default" or "d": return Default(operand, Evaluate());
        }
        return operand switch
        {
            ListValue l when name is "selectattr" or "rejectattr" => Select(renderer, l, filter, scope),
            ListValue l when name is "sort" or "map" => name == "sort" ? Sort(l, Evaluate()) : Map(l, Evaluate()),
            StringValue s when name == "indent" => IndentWithArgs(s, Evaluate()),
            StringValue s when name == "replace" => Replace(s, Evaluate()),
            DictValue { IsObject: true } d when TemplateBuiltins.DictMethod(d, name) is FunctionValue method => method.Invoke(Evaluate().WithKeywords(), scope),
            NumberValue n when name == "round" => RoundWithArgs(n, Evaluate()),
            _ => throw Unsupported(name, operand),
        };
    }

    private static StringValue ToJson(TemplateValue operand, Args args)
    {
        var k = args.Keywords;
        var indent = k.GetValueOrDefault("indent") ?? NoneValue.Instance;
        if (indent is not (NumberValue { IsInt: true } or NoneValue)) throw new TemplateError("tojson indent must be an integer");
        if (indent is NumberValue { Value: < 0 or > 1000 }) throw new TemplateError("tojson indent is out of range");
        if ((k.GetValueOrDefault("ensure_ascii") ?? BoolValue.False) is not BoolValue ascii) throw new TemplateError("tojson ensure_ascii must be a boolean");
        if ((k.GetValueOrDefault("sort_keys") ?? BoolValue.False) is not BoolValue sortKeys) throw new TemplateError("tojson sort_keys must be a boolean");
        string? item = null, key = null;
        switch (k.GetValueOrDefault("separators") ?? NoneValue.Instance)
        {
            case NoneValue: break;
            case ListValue { Items: [StringValue i, StringValue s] }: (item, key) = (i.Value, s.Value); break;
            default: throw new TemplateError("tojson separators must be two strings");
        }
        int width = indent is NumberValue n ? (int)n.Value : 0;
        return Str(TemplateJson.Serialize(operand, new JsonOptions(width, ascii.Value, sortKeys.Value, item, key), undefinedAsNull: true));
    }

    private static StringValue Join(TemplateValue operand, Func<Args> evaluate)
    {
        var parts = operand switch
        {
            StringValue s => Js.CodePoints(s.Value),
            ListValue l => l.Items.Select(Js.RawString).ToList(),
            _ => throw Unsupported("join", operand),
        };
        var args = evaluate();
        if ((args.Get(0, "separator") ?? StringValue.Empty) is not StringValue separator) throw new TemplateError("join separator must be a string");
        return Str(string.Join(separator.Value, parts));
    }

    private static TemplateValue ToNumber(TemplateValue operand, string name, Args args)
    {
        bool isInt = name == "int";
        var fallback = args.Get(0, "default") ?? new NumberValue(0, !isInt);
        switch (operand)
        {
            case StringValue s:
                double parsed = isInt ? Js.ParseInt(s.Value) : Js.ParseFloat(s.Value);
                return double.IsNaN(parsed) ? fallback : new NumberValue(parsed, !isInt);
            case NumberValue: return operand;
            case BoolValue b: return new NumberValue(b.Value ? 1 : 0, !isInt);
            default: throw Unsupported(name, operand);
        }
    }

    private static TemplateValue Default(TemplateValue operand, Args args)
    {
        var fallback = args.Get(0) ?? StringValue.Empty;
        if ((args.Get(1, "boolean") ?? BoolValue.False) is not BoolValue boolean) throw new TemplateError("default's boolean flag must be a boolean");
        return operand is UndefinedValue || (boolean.Value && !Js.Truthy(operand)) ? fallback : operand;
    }

    private static ListValue Sort(ListValue l, Args args)
    {
        if ((args.Get(0, "reverse") ?? BoolValue.False) is not BoolValue reverse) throw new TemplateError("sort reverse must be a boolean");
        if ((args.Get(1, "case_sensitive") ?? BoolValue.False) is not BoolValue caseSensitive) throw new TemplateError("sort case_sensitive must be a boolean");
        string? path = (args.Get(2, "attribute") ?? NoneValue.Instance) switch
        {
            NoneValue => null,
            StringValue s => s.Value,
            NumberValue { IsInt: true } n => Js.NumberToString(n.Value),
            _ => throw new TemplateError("sort attribute must be a string or an integer"),
        };
        var sorted = TemplateOperators.StableSort(l.Items, v => path is null ? v : AttributePath(v, path), caseSensitive.Value, reverse.Value);
        return new ListValue(sorted);
    }

    /// <summary>Follows a dotted path ("a.b.0") through dicts, namespaces and list indexes; undefined where it breaks.</summary>
    private static TemplateValue AttributePath(TemplateValue item, string path)
    {
        foreach (var part in path.Split('.'))
        {
            if (item is DictValue d) item = d.Map.GetValueOrDefault(part) ?? UndefinedValue.Instance;
            else if (item is ListValue l && Js.ParseInt(part) is var i && i >= 0 && i < l.Items.Count) item = l.Items[(int)i];
            else return UndefinedValue.Instance;
        }
        return item;
    }

    private static ListValue Select(TemplateRenderer renderer, ListValue l, FilterExpr filter, Scope scope)
    {
        bool select = filter.Name == "selectattr";
        if (l.Items.Any(i => i is not DictValue)) throw new TemplateError($"{filter.Name} needs a list of dicts");
        var args = filter.Args!;
        if (args.Any(a => a.Kind != ArgKind.Positional || a.Value is not LiteralExpr { Value: StringValue })) throw new TemplateError($"the arguments of {filter.Name} must be string literals");
        var values = args.Select(a => ((StringValue)renderer.Eval(a.Value, scope)).Value).ToList();
        if (values.Count == 0) throw new TemplateError($"{filter.Name} needs an attribute name");
        string? test = values.ElementAtOrDefault(1);
        if (test is not null && !TemplateTests.Exists(test)) throw new TemplateError($"unsupported test '{test}'");
        TemplateValue? argument = values.Count > 2 ? new StringValue(values[2]) : null;
        bool Passes(TemplateValue item) =>
            ((DictValue)item).Map.TryGetValue(values[0], out var v) && (test is null ? Js.Truthy(v) : TemplateTests.Run(test, v, argument));
        return new ListValue(l.Items.Where(item => Passes(item) == select).ToList());
    }

    private static ListValue Map(ListValue l, Args args)
    {
        if (!args.Keywords.TryGetValue("attribute", out var attribute)) throw new TemplateError("map is only supported with attribute=");
        if (attribute is not StringValue path) throw new TemplateError("map attribute must be a string");
        var fallback = args.Keywords.GetValueOrDefault("default") ?? UndefinedValue.Instance;
        TemplateValue Attribute(TemplateValue item) => item is not DictValue ? throw new TemplateError("map needs a list of dicts")
            : AttributePath(item, path.Value) is var v && v is UndefinedValue ? fallback : v;
        return new ListValue(l.Items.Select(Attribute).ToList());
    }

    private static TemplateValue Replace(StringValue s, Args args) =>
        CallMethod(TemplateBuiltins.StringMethod(s, "replace"), [.. args.Positional, new DictValue(args.Keywords, DictKind.Kwargs)]);

    /// <summary>Calls a string or dict method (which needs no scope).</summary>
    private static TemplateValue CallMethod(TemplateValue? method, List<TemplateValue> args) =>
        ((FunctionValue)method!).Invoke(args, TemplateBuiltins.NoScope);

    private static StringValue IndentWithArgs(StringValue s, Args args)
    {
        if ((args.Get(0, "width") ?? NumberValue.Int(4)) is not NumberValue { IsInt: true } width) throw new TemplateError("indent width must be an integer");
        bool first = Js.RawTruthy(args.Get(1, "first") ?? BoolValue.False), blank = Js.RawTruthy(args.Get(2, "blank") ?? BoolValue.False);
        return Str(Indent(s.Value, (int)Math.Clamp(width.Value, -1, 1001), first, blank));
    }

    private static NumberValue RoundWithArgs(NumberValue n, Args args)
    {
        if ((args.Get(0, "precision") ?? NumberValue.Int(0)) is not NumberValue { IsInt: true } precision) throw new TemplateError("round precision must be an integer");
        if ((args.Get(1, "method") ?? new StringValue("common")) is not StringValue method) throw new TemplateError("round method must be a string");
        return Round(n, precision.Value, method.Value);
    }
}
