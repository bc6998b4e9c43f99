using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sio.Models;

/// <summary>
/// Typed reads of a model's JSON configuration (config.json, generation_config.json): each value must have the JSON
/// type and range the field needs, else the error names the file, the field and what was found.
/// </summary>
public sealed class ConfigJson
{
    readonly JsonObject _root;
    public string Path { get; }

    ConfigJson(string path, JsonObject root) { Path = path; _root = root; }

    public static ConfigJson Load(string path)
    {
        if (!File.Exists(path)) throw SioException.InFile(path, "file not found");
        try { return new(path, JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw SioException.InFile(path, "not a JSON object")); }
        catch (JsonException e) { throw SioException.InFile(path, $"not valid JSON ({e.Message})"); }
    }

    public bool Has(string key) => _root[key] is { } n && n.GetValueKind() != JsonValueKind.Null;
    public JsonNode? this[string key] => _root[key];

    SioException Bad(string key, string need) => SioException.InFile(Path, $"\"{key}\" must be {need}, got {_root[key]?.ToJsonString() ?? "null"}");

    /// <summary>An integer in [min, max]; the fallback when the field is absent or null (required when no fallback).</summary>
    public int Int(string key, int? fallback = null, int min = 1, int max = 1 << 24)
    {
        if (!Has(key)) return fallback ?? throw SioException.InFile(Path, $"\"{key}\" is missing");
        var need = $"an integer from {min} to {max}";
        if (_root[key] is not JsonValue v || v.GetValueKind() != JsonValueKind.Number || !v.TryGetValue<double>(out var d)) throw Bad(key, need);
        if (d != Math.Floor(d) || d < min || d > max) throw Bad(key, need);
        return (int)d;
    }

    /// <summary>A finite number in (0, max] (or [0, max] when zero is allowed).</summary>
    public double Number(string key, double fallback, double max = double.MaxValue, bool zero = false)
    {
        if (!Has(key)) return fallback;
        var need = zero ? $"a number from 0 to {max:G}" : $"a positive number up to {max:G}";
        if (_root[key] is not JsonValue v || v.GetValueKind() != JsonValueKind.Number || !v.TryGetValue<double>(out var d)) throw Bad(key, need);
        if (!double.IsFinite(d) || d < 0 || (d == 0 && !zero) || d > max) throw Bad(key, need);
        return d;
    }

    /// <summary>A list of exactly <paramref name="count"/> finite positive numbers, each at most max (longrope's factors).</summary>
    public double[] Numbers(string key, int count, double max = double.MaxValue)
    {
        var need = $"a list of {count} positive numbers up to {max:G}";
        if (_root[key] is not JsonArray a || a.Count != count) throw Bad(key, need);
        var values = new double[count];
        for (int i = 0; i < count; i++)
            if (a[i] is not JsonValue v || v.GetValueKind() != JsonValueKind.Number || !v.TryGetValue(out values[i]) || !double.IsFinite(values[i]) || values[i] <= 0 || values[i] > max)
                throw Bad(key, need);
        return values;
    }

    public bool Bool(string key, bool fallback)
    {
        if (!Has(key)) return fallback;
        return _root[key]!.GetValueKind() switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => throw Bad(key, "true or false") };
    }

    public string? String(string key)
    {
        if (!Has(key)) return null;
        return _root[key] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : throw Bad(key, "a string");
    }

    public string[] Strings(string key)
    {
        if (!Has(key)) return [];
        if (_root[key] is not JsonArray a || a.Any(x => x is not JsonValue v || v.GetValueKind() != JsonValueKind.String)) throw Bad(key, "a list of strings");
        return a.Select(x => x!.GetValue<string>()).ToArray();
    }

    /// <summary>A token id or a list of them (eos_token_id in Llama 3 and Gemma): every entry an integer in [0, vocab).</summary>
    public int[] Ids(string key, int vocab)
    {
        if (!Has(key)) return [];
        var need = $"a token id or a list of token ids, each from 0 to {vocab - 1}";
        var nodes = _root[key] is JsonArray a ? a.ToArray() : [_root[key]];
        var ids = new int[nodes.Length];
        for (int i = 0; i < nodes.Length; i++)
        {
            if (nodes[i] is not JsonValue v || v.GetValueKind() != JsonValueKind.Number || !v.TryGetValue<double>(out var d) || d != Math.Floor(d) || d < 0 || d >= vocab)
                throw Bad(key, need);
            ids[i] = (int)d;
        }
        return ids;
    }

    public JsonObject? Object(string key)
    {
        if (!Has(key)) return null;
        return _root[key] as JsonObject ?? throw Bad(key, "an object");
    }

    /// <summary>A nested object read with the same checks: its fields are named "outer.inner", as errors print them.</summary>
    public ConfigJson? Nested(string key) =>
        Object(key) is { } o ? new ConfigJson(Path, new JsonObject(o.Select(kv => KeyValuePair.Create($"{key}.{kv.Key}", kv.Value?.DeepClone())))) : null;
}
