using System.Text.Json;
using System.Text.Json.Nodes;
using Sio.Generation;

namespace Sio.Serving;

/// <summary>A function the model may call: its name and the JSON schema of its arguments (null: any object).</summary>
public sealed record ToolFunction(string Name, JsonObject? Parameters);

/// <summary>A call the model wrote: the function's name and its arguments as JSON text.</summary>
public sealed record ToolCall(string Name, string Arguments);

/// <summary>
/// How a model writes a tool call, as its chat template instructs it: Hermes-style templates (Qwen2.5, Qwen3, Hermes)
/// wrap <c>{"name": …, "arguments": …}</c> in &lt;tool_call&gt; tags; Llama 3.1-style ones ask for the bare object with
/// "parameters". A forced call is written in this format by <see cref="JsonGrammar.ToolCall"/>; an answer is read back
/// into calls by <see cref="Parse"/>.
/// </summary>
public sealed record ToolCallFormat(string Prefix, string Suffix, string ArgumentsKey)
{
    public static readonly ToolCallFormat Json = new("", "", "arguments");
    public static readonly ToolCallFormat Hermes = new("<tool_call>\n", "\n</tool_call>", "arguments");

    public static ToolCallFormat Of(string template) =>
        template.Contains("<tool_call>", StringComparison.Ordinal) ? Hermes
        : template.Contains("\"parameters\"", StringComparison.Ordinal) ? Json with { ArgumentsKey = "parameters" }
        : Json;

    /// <summary>The grammar of one call of one of <paramref name="functions"/>.</summary>
    public JsonGrammar Grammar(IReadOnlyList<ToolFunction> functions) =>
        JsonGrammar.ToolCall([.. functions.Select(f => (f.Name, f.Parameters))], Prefix, Suffix, ArgumentsKey);

    /// <summary>Whether an answer that starts with <paramref name="text"/> may still turn out to be a call (so a stream holds it back).</summary>
    public bool MayBeCall(string text)
    {
        var t = text.TrimStart();
        var start = Prefix.Length > 0 ? Prefix.TrimEnd() : "{";
        return t.Length == 0 || t.StartsWith(start, StringComparison.Ordinal) || start.StartsWith(t, StringComparison.Ordinal);
    }

    /// <summary>
    /// The calls in an answer (only of the offered <paramref name="names"/>, with arguments that are a JSON object), and
    /// the text around them (null when there is none).
    /// </summary>
    public (string? Content, List<ToolCall> Calls) Parse(string text, IReadOnlySet<string> names)
    {
        var calls = new List<ToolCall>();
        if (Prefix.Length == 0)
            return Call(text.Trim(), names) is { } call ? (null, [call]) : (text, calls);
        var rest = new System.Text.StringBuilder();
        string open = Prefix.TrimEnd(), close = Suffix.TrimStart();
        int at = 0;
        while (at < text.Length)
        {
            int start = text.IndexOf(open, at, StringComparison.Ordinal);
            if (start < 0) break;
            int end = text.IndexOf(close, start + open.Length, StringComparison.Ordinal);
            var body = text[(start + open.Length)..(end < 0 ? text.Length : end)];
            if (Call(body.Trim(), names) is not { } call) break;
            rest.Append(text, at, start - at);
            calls.Add(call);
            at = end < 0 ? text.Length : end + close.Length;
        }
        rest.Append(text, at, text.Length - at);
        var content = rest.ToString().Trim();
        return (calls.Count > 0 && content.Length == 0 ? null : calls.Count > 0 ? content : text, calls);
    }

    ToolCall? Call(string json, IReadOnlySet<string> names)
    {
        if (!json.StartsWith('{')) return null;
        try
        {
            if (JsonNode.Parse(json) is not JsonObject o || o["name"] is not JsonValue n || !n.TryGetValue<string>(out var name) || !names.Contains(name)) return null;
            var args = o[ArgumentsKey] ?? o["arguments"] ?? o["parameters"];
            return args is JsonObject ? new ToolCall(name, args.ToJsonString()) : null;
        }
        catch (JsonException) { return null; }
    }
}
