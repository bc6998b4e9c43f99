using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sio.Templating;

/// <summary>
/// A Hugging Face chat template (the Jinja2 subset that chat templates use), rendered exactly as the reference
/// JavaScript renderer @huggingface/jinja 0.5.11 does (the one transformers.js uses), with lstrip_blocks and
/// trim_blocks on. Anything outside the subset is an error, never a silently different prompt.
/// </summary>
/// <remarks>
/// The reference's JavaScript behaviours are kept where a template can see them: true/false print in lower case,
/// none prints nothing, == is loose, "a" + 1 is "a1", strip('x') strips white space, 2.0 prints as "2.0".
/// Additions where the reference has none: dict(), the filters count, d and round, the tests float, ne, lt, gt,
/// le, ge, in and divisibleby (also with an argument in parentheses), and %S in strftime_now.
/// </remarks>
public sealed class JinjaTemplate
{
    private readonly List<Node> body;

    private JinjaTemplate(List<Node> body) => this.body = body;

    /// <summary>Parses a template; throws <see cref="SioException"/> naming the line of a syntax error or unsupported statement.</summary>
    public static JinjaTemplate Parse(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        try
        {
            return new JinjaTemplate(TemplateParser.Parse(TemplateLexer.Tokenize(source)));
        }
        catch (TemplateError e)
        {
            throw e.ToSioException();
        }
    }

    /// <summary>
    /// Renders with the given variables (messages, add_generation_prompt, bos_token, tools, ...); throws
    /// <see cref="SioException"/> on a render error, raise_exception, or an unsupported filter, test or method.
    /// </summary>
    public string Render(JsonObject context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var globals = TemplateBuiltins.Globals();
        try
        {
            foreach (var (key, value) in context)
            {
                if (TemplateBuiltins.Reserved.Contains(key)) throw new TemplateError($"the context variable '{key}' would hide a built-in name");
                globals.Set(key, FromJson(value));
            }
            return new TemplateRenderer().Render(body, globals);
        }
        catch (TemplateError e)
        {
            throw e.ToSioException();
        }
    }

    /// <summary>Converts JSON as JSON.parse would see it: integral numbers are ints, and object keys that are array indexes come first, in numeric order.</summary>
    private static TemplateValue FromJson(JsonNode? node)
    {
        switch (node)
        {
            case null: return NoneValue.Instance;
            case JsonArray array: return new ListValue(array.Select(FromJson).ToList());
            case JsonObject obj:
                var map = new OrderedDictionary<string, TemplateValue>();
                foreach (var (key, value) in obj.OrderBy(e => ArrayIndex(e.Key) ?? uint.MaxValue)) map[key] = FromJson(value);
                return new DictValue(map);
        }
        var kind = node.GetValueKind();
        return kind switch
        {
            JsonValueKind.String => new StringValue(node.GetValue<string>()),
            JsonValueKind.True => BoolValue.True,
            JsonValueKind.False => BoolValue.False,
            JsonValueKind.Number => Number(double.Parse(node.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture)),
            _ => NoneValue.Instance,
        };
    }

    private static NumberValue Number(double d) => new(d, isFloat: !double.IsFinite(d) || d % 1 != 0);

    /// <summary>The value of a key that JavaScript treats as an array index ("0", "17"), or null.</summary>
    private static uint? ArrayIndex(string key)
    {
        if (key.Length == 0 || key.Length > 10 || (key.Length > 1 && key[0] == '0') || !key.All(char.IsAsciiDigit)) return null;
        ulong value = ulong.Parse(key, CultureInfo.InvariantCulture);
        return value < uint.MaxValue ? (uint)value : null;
    }
}
