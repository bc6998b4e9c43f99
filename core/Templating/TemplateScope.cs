namespace Sio.Templating;

/// <summary>
/// One level of variables. As in the reference, a for loop and a macro call each open a child scope, set writes to
/// the current scope, and a macro body sees the scope it is called from.
/// </summary>
internal sealed class Scope(Scope? parent)
{
    private readonly Scope? parent = parent;
    private readonly Dictionary<string, TemplateValue> variables = new(StringComparer.Ordinal);

    public TemplateValue Lookup(string name)
    {
        for (var scope = this; scope != null; scope = scope.parent)
        {
            if (scope.variables.TryGetValue(name, out var value)) return value;
        }
        return UndefinedValue.Instance;
    }

    public void Set(string name, TemplateValue value) => variables[name] = value;
}
