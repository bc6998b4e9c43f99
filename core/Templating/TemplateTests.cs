namespace Sio.Templating;

/// <summary>
/// The tests of "x is NAME" and of selectattr/rejectattr. Those the reference knows behave as there (iterable is
/// true for lists and strings only, mapping for dicts but not namespaces); float, ne, lt, gt, le, ge, in and
/// divisibleby are additions, usable as "x is divisibleby(3)" or through selectattr.
/// </summary>
internal static class TemplateTests
{
    private static readonly HashSet<string> Names =
    [
        "boolean", "callable", "odd", "even", "false", "true", "none", "string", "number", "integer", "float",
        "iterable", "mapping", "sequence", "lower", "upper", "defined", "undefined", "eq", "equalto", "==", "ne",
        "!=", "lt", "<", "gt", ">", "le", "<=", "ge", ">=", "in", "divisibleby",
    ];

    public static bool Exists(string name) => Names.Contains(name);

    public static bool Run(string name, TemplateValue v, TemplateValue? arg) => name switch
    {
        "boolean" => v is BoolValue,
        "callable" => v is FunctionValue,
        "odd" => Integer(v, name) % 2 != 0,
        "even" => Integer(v, name) % 2 == 0,
        "false" => v is BoolValue { Value: false },
        "true" => v is BoolValue { Value: true },
        "none" => v is NoneValue,
        "string" => v is StringValue,
        "number" => v is NumberValue,
        "integer" => v is NumberValue { IsInt: true },
        "float" => v is NumberValue { IsFloat: true },
        "iterable" => v is ListValue { IsTuple: false } or StringValue,
        "mapping" => v is DictValue { IsObject: true },
        "sequence" => v is ListValue or StringValue or DictValue { IsObject: true },
        "lower" => v is StringValue s && string.Equals(s.Value, s.Value.ToLowerInvariant(), StringComparison.Ordinal),
        "upper" => v is StringValue s && string.Equals(s.Value, s.Value.ToUpperInvariant(), StringComparison.Ordinal),
        "defined" => v is not UndefinedValue,
        "undefined" => v is UndefinedValue,
        "eq" or "equalto" or "==" => Js.StrictEquals(v, Required(arg, name)),
        "ne" or "!=" => !Js.StrictEquals(v, Required(arg, name)),
        "lt" or "<" => Compare("<", v, arg, name),
        "gt" or ">" => Compare(">", v, arg, name),
        "le" or "<=" => Compare("<=", v, arg, name),
        "ge" or ">=" => Compare(">=", v, arg, name),
        "in" => Js.Truthy(TemplateOperators.Binary("in", v, Required(arg, name))),
        "divisibleby" => Integer(v, name) % Integer(Required(arg, name), name) == 0,
        _ => throw new TemplateError($"unsupported test '{name}'"),
    };

    private static TemplateValue Required(TemplateValue? arg, string name) =>
        arg ?? throw new TemplateError($"test '{name}' needs an argument");

    private static bool Compare(string op, TemplateValue v, TemplateValue? arg, string name) =>
        Js.Truthy(TemplateOperators.Binary(op, v, Required(arg, name)));

    private static double Integer(TemplateValue v, string name) =>
        v is NumberValue { IsInt: true } n ? n.Value : throw new TemplateError($"test '{name}' needs an integer, not {v.Described}");
}
