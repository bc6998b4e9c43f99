namespace Sio.Templating;

/// <summary>
/// A runtime value of a chat template. The kinds follow the reference renderer (@huggingface/jinja): undefined, none,
/// bool, int and float (both held as a double, as JavaScript does), string, list or tuple, dict (also keyword
/// arguments and namespaces) and callable.
/// </summary>
internal abstract class TemplateValue
{
    /// <summary>The kind's name as error messages show it.</summary>
    public abstract string TypeName { get; }

    /// <summary>The kind with its article, for messages: "a string", "an integer".</summary>
    public string Described => (TypeName[0] is 'a' or 'e' or 'i' or 'o' or 'u' ? "an " : "a ") + TypeName;
}

/// <summary>The value of a name or attribute that does not exist.</summary>
internal sealed class UndefinedValue : TemplateValue
{
    public static readonly UndefinedValue Instance = new();
    public override string TypeName => "undefined";
}

/// <summary>none / None, and JSON null.</summary>
internal sealed class NoneValue : TemplateValue
{
    public static readonly NoneValue Instance = new();
    public override string TypeName => "none";
}

/// <summary>true or false.</summary>
internal sealed class BoolValue : TemplateValue
{
    public static readonly BoolValue True = new(true), False = new(false);
    private BoolValue(bool value) => Value = value;
    public bool Value { get; }
    public override string TypeName => "boolean";
    public static BoolValue Of(bool value) => value ? True : False;
}

/// <summary>An int or a float; both are IEEE doubles, as in the reference, and differ only in how they print.</summary>
internal sealed class NumberValue(double value, bool isFloat) : TemplateValue
{
    public double Value { get; } = value;
    public bool IsFloat { get; } = isFloat;
    public bool IsInt => !IsFloat;
    public override string TypeName => IsFloat ? "float" : "integer";
    public static NumberValue Int(double value) => new(value, false);
    public static NumberValue Float(double value) => new(value, true);
}

/// <summary>A string (UTF-16, like JavaScript's).</summary>
internal sealed class StringValue(string value) : TemplateValue
{
    public static readonly StringValue Empty = new("");
    public string Value { get; } = value;
    public override string TypeName => "string";
}

/// <summary>A list, or a tuple (which the reference treats as a list in most places, but not all).</summary>
internal sealed class ListValue(List<TemplateValue> items, bool isTuple = false) : TemplateValue
{
    public List<TemplateValue> Items { get; } = items;
    public bool IsTuple { get; } = isTuple;
    public override string TypeName => IsTuple ? "tuple" : "list";
}

/// <summary>What a <see cref="DictValue"/> stands for.</summary>
internal enum DictKind { Object, Kwargs, Namespace }

/// <summary>An ordered mapping with string keys: a dict, the keyword arguments of a call, or a namespace.</summary>
internal sealed class DictValue(OrderedDictionary<string, TemplateValue> map, DictKind kind = DictKind.Object) : TemplateValue
{
    public OrderedDictionary<string, TemplateValue> Map { get; } = map;
    public DictKind Kind { get; } = kind;

    /// <summary>A dict or keyword arguments: what the reference calls an ObjectValue (namespaces are not).</summary>
    public bool IsObject => Kind != DictKind.Namespace;
    public override string TypeName => Kind switch { DictKind.Kwargs => "keyword arguments", DictKind.Namespace => "namespace", _ => "dict" };
    public static DictValue Empty() => new(new OrderedDictionary<string, TemplateValue>());
}

/// <summary>Something callable: a macro, a global such as range, or a string or dict method bound to its value.</summary>
internal sealed class FunctionValue(string name, Func<List<TemplateValue>, Scope, TemplateValue> invoke) : TemplateValue
{
    public string Name { get; } = name;
    public Func<List<TemplateValue>, Scope, TemplateValue> Invoke { get; } = invoke;
    public override string TypeName => "function";
}

/// <summary>A rendering error; the renderer adds the template line where it is known.</summary>
internal sealed class TemplateError(string message, int line = 0) : Exception(message)
{
    public int Line { get; private set; } = line;

    /// <summary>Records the line of the innermost node that failed; returns false, for use as an exception filter
    /// (a filter keeps deep templates from rethrowing at every level, which could exhaust the stack).</summary>
    public bool SetLineIfUnknown(int line)
    {
        if (Line == 0) Line = line;
        return false;
    }

    public SioException ToSioException() =>
        new(Line > 0 ? $"chat_template: line {Line}: {Message}" : $"chat_template: {Message}");
}
