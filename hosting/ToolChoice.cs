using System.Text.Json;
using System.Text.Json.Nodes;
using Sio.Serving;

namespace Sio.Hosting;

/// <summary>
/// A chat request's tools and tool_choice: the functions offered, whether the answer must be a call (tool_choice
/// "required" or a named function: written under <see cref="Generation.JsonGrammar.ToolCall"/>), and the template's format.
/// </summary>
sealed record ToolChoice(IReadOnlyList<ToolFunction> Functions, bool Forced, bool Offered, ToolCallFormat Format)
{
    public IReadOnlySet<string> Names { get; } = Functions.Select(f => f.Name).ToHashSet();

    public static ToolChoice? Parse(JsonObject body, ToolCallFormat format)
    {
        var functions = ReadFunctions(body["tools"]);
        var choice = body["tool_choice"];
        if (functions.Count == 0)
        {
            if (choice is not null && !(choice is JsonValue v && v.GetValueKind() == JsonValueKind.String && v.GetValue<string>() is "none" or "auto"))
                throw new BadRequest("tool_choice needs tools", "tool_choice");
            return null;
        }
        return choice switch
        {
            null => new ToolChoice(functions, Forced: false, Offered: true, format),
            JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>() switch
            {
                "auto" => new ToolChoice(functions, false, true, format),
                "none" => new ToolChoice(functions, false, false, format),
                "required" => new ToolChoice(functions, true, true, format),
                var other => throw new BadRequest($"tool_choice '{other}' is not one of none, auto, required (or {{\"type\": \"function\", \"function\": {{\"name\": …}}}})", "tool_choice"),
            },
            JsonObject o when o["type"]?.GetValue<string>() == "function" && o["function"]?["name"] is JsonValue n && n.TryGetValue<string>(out var name) =>
                functions.FirstOrDefault(f => f.Name == name) is { } f
                    ? new ToolChoice([f], true, true, format)
                    : throw new BadRequest($"tool_choice names '{name}', which is not one of the tools ({string.Join(", ", functions.Select(t => t.Name))})", "tool_choice"),
            _ => throw new BadRequest("tool_choice must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": …}}", "tool_choice"),
        };
    }

    static List<ToolFunction> ReadFunctions(JsonNode? tools)
    {
        if (tools is null) return [];
        if (tools is not JsonArray list) throw new BadRequest("tools must be a list", "tools");
        var functions = new List<ToolFunction>();
        foreach (var t in list)
        {
            if (t is not JsonObject o || o["type"] is not JsonValue type || type.GetValue<string>() != "function" || o["function"] is not JsonObject f)
                throw new BadRequest("every tool must be {\"type\": \"function\", \"function\": {…}}", "tools");
            if (f["name"] is not JsonValue nv || !nv.TryGetValue<string>(out var name) || name.Length == 0)
                throw new BadRequest("every function needs a name", "tools");
            if (functions.Any(x => x.Name == name)) throw new BadRequest($"two tools are named '{name}'", "tools");
            var parameters = f["parameters"] switch
            {
                null => null,
                JsonObject p => p,
                _ => throw new BadRequest($"tools: the parameters of '{name}' must be a JSON schema object", "tools"),
            };
            functions.Add(new ToolFunction(name, parameters));
        }
        return functions;
    }
}
