using System.Text.Json;

namespace Sio.Tokenization;

/// <summary>Typed reads of tokenizer.json fields, each failing with "FILE: field: problem".</summary>
static class TokenizerJson
{
    public static string Type(JsonElement node, string what, string source) =>
        node.ValueKind == JsonValueKind.Object && node.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String
            ? t.GetString()! : throw SioException.InFile(source, $"{what}: an object with a string \"type\" is expected");

    public static string String(JsonElement node, string field, string source) =>
        node.TryGetProperty(field, out var v) && v.ValueKind == JsonValueKind.String
            ? v.GetString()! : throw SioException.InFile(source, $"\"{field}\" must be a string");

    public static JsonElement.ArrayEnumerator Array(JsonElement node, string field, string source) =>
        node.TryGetProperty(field, out var v) && v.ValueKind == JsonValueKind.Array
            ? v.EnumerateArray() : throw SioException.InFile(source, $"\"{field}\" must be an array");

    /// <summary>A {"String": "…"} pattern; a regex pattern is refused where only strings are supported.</summary>
    public static string StringPattern(JsonElement node, string what, string source) =>
        node.TryGetProperty("pattern", out var p) && p.ValueKind == JsonValueKind.Object && p.TryGetProperty("String", out var s) && s.ValueKind == JsonValueKind.String
            ? s.GetString()! : throw SioException.InFile(source, $"{what}: only {{\"String\": …}} patterns are supported here");

    public static bool Bool(JsonElement node, string field, bool fallback) =>
        node.TryGetProperty(field, out var v) ? v.ValueKind switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => fallback } : fallback;

    public static JsonElement Property(JsonElement node, string field) =>
        node.ValueKind == JsonValueKind.Object && node.TryGetProperty(field, out var v) ? v : default;
}
