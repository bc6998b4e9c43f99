using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;

namespace Sio.Serving;

/// <summary>
/// Microsoft.Extensions.AI messages and tools in the shape chat templates read (OpenAI's): text as content, function
/// calls as an assistant's tool_calls, function results as "tool" messages.
/// </summary>
public static class ChatMessages
{
    public static JsonArray ToJson(IEnumerable<ChatMessage> messages)
    {
        var list = new JsonArray();
        foreach (var m in messages)
        {
            var calls = m.Contents.OfType<FunctionCallContent>().ToList();
            var text = string.Concat(m.Contents.OfType<TextContent>().Select(t => t.Text));
            if (calls.Count > 0 || text.Length > 0 || m.Contents.Count == 0)
            {
                var message = new JsonObject { ["role"] = m.Role.Value, ["content"] = text };
                if (calls.Count > 0) message["tool_calls"] = new JsonArray([.. calls.Select(c => (JsonNode)new JsonObject
                {
                    ["id"] = c.CallId, ["type"] = "function",
                    ["function"] = new JsonObject { ["name"] = c.Name, ["arguments"] = JsonSerializer.Serialize(c.Arguments ?? new Dictionary<string, object?>()) },
                })]);
                list.Add(message);
            }
            foreach (var r in m.Contents.OfType<FunctionResultContent>())
                list.Add(new JsonObject { ["role"] = "tool", ["tool_call_id"] = r.CallId, ["content"] = r.Result is string s ? s : JsonSerializer.Serialize(r.Result) });
        }
        return list;
    }

    public static JsonArray ToolsJson(IEnumerable<AITool> tools) => new([.. tools.OfType<AIFunctionDeclaration>().Select(f => (JsonNode)new JsonObject
    {
        ["type"] = "function",
        ["function"] = new JsonObject { ["name"] = f.Name, ["description"] = f.Description, ["parameters"] = JsonNode.Parse(f.JsonSchema.GetRawText()) },
    })]);
}
