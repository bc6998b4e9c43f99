using System.Text.Json;

namespace Sio.Tokenization;

/// <summary>
/// The fields of a model's tokenizer_config.json that sio uses: the BOS/EOS token strings, whether BOS is added,
/// and the Jinja chat template (a string, or the entry named "default" of a list of named templates).
/// A missing file reads as empty; a malformed one is an error naming the file.
/// </summary>
public sealed record TokenizerConfig(string? BosToken, string? EosToken, bool? AddBosToken, string? ChatTemplate)
{
    public static readonly TokenizerConfig Empty = new(null, null, null, null);

    public static TokenizerConfig Read(string path)
    {
        if (!File.Exists(path)) return Empty;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw SioException.InFile(path, "not a JSON object");
            return new TokenizerConfig(Token(root, "bos_token", path), Token(root, "eos_token", path),
                root.TryGetProperty("add_bos_token", out var a) && a.ValueKind is JsonValueKind.True or JsonValueKind.False ? a.GetBoolean() : null,
                Template(root, path));
        }
        catch (JsonException e) { throw SioException.InFile(path, $"not valid JSON ({e.Message})"); }
    }

    /// <summary>A special token given as a string or as {"content": "…"}; null when absent or null.</summary>
    static string? Token(JsonElement root, string field, string path) =>
        !root.TryGetProperty(field, out var v) ? null : v.ValueKind switch
        {
            JsonValueKind.Null => null,
            JsonValueKind.String => v.GetString(),
            JsonValueKind.Object when v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
            _ => throw SioException.InFile(path, $"\"{field}\" must be a string or an object with a string \"content\""),
        };

    static string? Template(JsonElement root, string path)
    {
        if (!root.TryGetProperty("chat_template", out var t) || t.ValueKind == JsonValueKind.Null) return null;
        if (t.ValueKind == JsonValueKind.String) return t.GetString();
        if (t.ValueKind == JsonValueKind.Array)
            foreach (var entry in t.EnumerateArray())
                if (entry.ValueKind == JsonValueKind.Object && entry.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String
                    && n.GetString() == "default" && entry.TryGetProperty("template", out var body) && body.ValueKind == JsonValueKind.String)
                    return body.GetString();
        throw SioException.InFile(path, "\"chat_template\" must be a string or a list of {\"name\", \"template\"} with one named \"default\"");
    }
}
