using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sio.Generation;

/// <summary>
/// What a constrained output must be, as a tree of byte-level nodes: any JSON object (OpenAI's json_object), a JSON
/// schema (json_schema; objects are written with their properties in the schema's order and no whitespace, so the
/// keys themselves are forced), or one tool call among the request's functions. Built once per request; a
/// <see cref="JsonCursor"/> walks it byte by byte.
/// </summary>
public sealed class JsonGrammar
{
    internal JsonNodeKind Root { get; }
    /// <summary>What this grammar was built from, for messages.</summary>
    public string Name { get; }
    /// <summary>The fewest tokens that can write it (a byte each, at worst).</summary>
    public int MinTokens => Root.MinBytes;

    JsonGrammar(JsonNodeKind root, string name) => (Root, Name) = (root, name);

    /// <summary>Any JSON object (response_format json_object).</summary>
    public static readonly JsonGrammar AnyObject = new(new AnyValueNode(objectOnly: true), "a JSON object");

    /// <summary>A JSON schema (response_format json_schema); its top level must be an object, as OpenAI requires.</summary>
    public static JsonGrammar FromSchema(JsonObject schema, string name)
    {
        var compiler = new SchemaCompiler(schema);
        var root = compiler.Compile(schema, "schema");
        if (root is not ObjectNode) throw new SioException("schema: the top level must be an object schema (\"type\": \"object\")");
        compiler.Finish();
        return new JsonGrammar(root, name);
    }

    /// <summary>
    /// One call of one of <paramref name="functions"/> (name → JSON schema of its arguments), written as
    /// <c>{"name": …, "arguments": {…}}</c> (or the template's own key for the arguments) between
    /// <paramref name="prefix"/> and <paramref name="suffix"/> (the chat template's tool-call markers, e.g. Qwen's &lt;tool_call&gt;).
    /// </summary>
    public static JsonGrammar ToolCall(IReadOnlyList<(string Name, JsonObject? Parameters)> functions, string prefix, string suffix, string argumentsKey = "arguments")
    {
        if (functions.Count == 0) throw new SioException("tools: no function to call");
        var compiler = new SchemaCompiler(new JsonObject());
        var options = new List<(byte[], JsonNodeKind)>();
        foreach (var (name, parameters) in functions)
        {
            var args = parameters is null || parameters.Count == 0 ? new AnyValueNode(objectOnly: true) : compiler.Compile(parameters, $"tools.{name}.parameters");
            options.Add((Encoding.UTF8.GetBytes($"{prefix}{{\"name\":{SchemaCompiler.Literal(JsonValue.Create(name))},{SchemaCompiler.Literal(JsonValue.Create(argumentsKey))}:"), args));
        }
        var root = new PrefixedNode([.. options], Encoding.UTF8.GetBytes("}" + suffix));
        compiler.Finish(root);
        return new JsonGrammar(root, "a tool call");
    }
}

/// <summary>A node of a <see cref="JsonGrammar"/>; <see cref="MinBytes"/> is the fewest bytes of any value it accepts.</summary>
internal abstract class JsonNodeKind
{
    public int MinBytes = SchemaCompiler.Unbounded;
    /// <summary>The bytes a value of this node may start with.</summary>
    public abstract bool Starts(byte b);
}

/// <summary>An object whose properties come in the schema's order; optional ones may be left out.</summary>
internal sealed class ObjectNode : JsonNodeKind
{
    public (byte[] Key, bool Required, JsonNodeKind Value)[] Properties = [];
    /// <summary>Per index: the bytes the required properties from there on need (comma, key, shortest value).</summary>
    public int[] RequiredFrom = [];
    /// <summary>Per index: the first required property at or after it (Properties.Length: none).</summary>
    public int[] NextRequired = [];
    public override bool Starts(byte b) => b == (byte)'{';
}

internal sealed class ArrayNode(JsonNodeKind item, int minItems, int maxItems) : JsonNodeKind
{
    public JsonNodeKind Item { get; } = item;
    public int MinItems { get; } = minItems;
    public int MaxItems { get; } = maxItems;
    public override bool Starts(byte b) => b == (byte)'[';
}

internal sealed class StringNode : JsonNodeKind
{
    public override bool Starts(byte b) => b == (byte)'"';
}

internal sealed class NumberNode(bool integer) : JsonNodeKind
{
    public bool Integer { get; } = integer;
    public override bool Starts(byte b) => b is (byte)'-' or >= (byte)'0' and <= (byte)'9';
}

/// <summary>One of a few exact JSON texts: enum, const, true/false, null.</summary>
internal sealed class LiteralsNode(byte[][] values) : JsonNodeKind
{
    public byte[][] Values { get; } = values;
    public override bool Starts(byte b) => Values.Any(v => v[0] == b);
}

/// <summary>anyOf, or a list of types: the first byte decides which option is being written.</summary>
internal sealed class UnionNode(JsonNodeKind[] options) : JsonNodeKind
{
    public JsonNodeKind[] Options { get; set; } = options; // set once, for a $ref's definition
    public override bool Starts(byte b) => Options.Any(o => o.Starts(b));
}

/// <summary>Any JSON value (an object only, for json_object), read by <see cref="JsonState"/>.</summary>
internal sealed class AnyValueNode : JsonNodeKind
{
    public AnyValueNode(bool objectOnly) => (ObjectOnly, MinBytes) = (objectOnly, objectOnly ? 2 : 1);
    public bool ObjectOnly { get; }
    public override bool Starts(byte b) => ObjectOnly ? b == (byte)'{' : b is (byte)'{' or (byte)'[' or (byte)'"' or (byte)'-' or (byte)'t' or (byte)'f' or (byte)'n' or >= (byte)'0' and <= (byte)'9';
}

/// <summary>One of several exact prefixes, each followed by its own value, then a common suffix (a tool call: the name decides the arguments' schema).</summary>
internal sealed class PrefixedNode((byte[] Prefix, JsonNodeKind Value)[] options, byte[] suffix) : JsonNodeKind
{
    public (byte[] Prefix, JsonNodeKind Value)[] Options { get; } = options;
    public byte[] Suffix { get; } = suffix;
    public override bool Starts(byte b) => Options.Any(o => o.Prefix[0] == b);
}

/// <summary>Turns a JSON schema into nodes: every keyword sio does not enforce is refused by its path, never ignored.</summary>
internal sealed class SchemaCompiler(JsonObject document)
{
    public const int Unbounded = 1 << 28;
    static readonly HashSet<string> Annotations = ["description", "title", "default", "examples", "$schema", "$id", "$comment", "strict", "$defs", "definitions"];
    static readonly JsonSerializerOptions Compact = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    readonly Dictionary<string, JsonNodeKind> _refs = new();
    readonly List<JsonNodeKind> _nodes = new();

    public static string Literal(JsonNode? value) => value?.ToJsonString(Compact) ?? "null";

    public JsonNodeKind Compile(JsonNode? schema, string path)
    {
        if (schema is JsonValue b && b.GetValueKind() == JsonValueKind.True) return Add(new AnyValueNode(objectOnly: false));
        if (schema is not JsonObject s) throw new SioException($"{path}: a schema must be an object");
        if (s["$ref"] is JsonNode r) return Reference(r, s, path);
        foreach (var (key, _) in s)
            if (!Annotations.Contains(key) && key is not ("type" or "properties" or "required" or "additionalProperties" or "items" or "minItems" or "maxItems" or "enum" or "const" or "anyOf"))
                throw new SioException($"{path}: sio does not enforce the schema keyword '{key}' (it takes type, properties, required, additionalProperties: false, items, minItems, maxItems, enum, const, anyOf, $ref and $defs)");
        if (s["enum"] is JsonNode e) return Add(Literals(e is JsonArray { Count: > 0 } list ? list : throw new SioException($"{path}.enum: must be a non-empty list"), path));
        if (s.ContainsKey("const")) return Add(new LiteralsNode([Encoding.UTF8.GetBytes(Literal(s["const"]))]));
        if (s["anyOf"] is JsonNode any)
            return Union(any is JsonArray { Count: > 0 } opts ? [.. opts.Select((o, i) => Compile(o, $"{path}.anyOf[{i}]"))] : throw new SioException($"{path}.anyOf: must be a non-empty list"), path);
        return s["type"] switch
        {
            null => s.ContainsKey("properties") ? Typed("object", s, path) : Add(new AnyValueNode(objectOnly: false)),
            JsonArray types => Union([.. types.Select(t => Typed(TypeName(t, path), s, path))], path),
            var t => Typed(TypeName(t, path), s, path),
        };
    }

    static string TypeName(JsonNode? t, string path) =>
        t is JsonValue v && v.TryGetValue<string>(out var name) ? name : throw new SioException($"{path}.type: must be a string or a list of strings");

    JsonNodeKind Typed(string type, JsonObject s, string path) => type switch
    {
        "object" => Object(s, path),
        "array" => Add(new ArrayNode(s["items"] is JsonNode items ? Compile(items, $"{path}.items") : Add(new AnyValueNode(false)),
            Count(s, "minItems", 0, path), Count(s, "maxItems", int.MaxValue, path))),
        "string" => Add(new StringNode()),
        "number" => Add(new NumberNode(integer: false)),
        "integer" => Add(new NumberNode(integer: true)),
        "boolean" => Add(new LiteralsNode([Encoding.UTF8.GetBytes("true"), Encoding.UTF8.GetBytes("false")])),
        "null" => Add(new LiteralsNode([Encoding.UTF8.GetBytes("null")])),
        _ => throw new SioException($"{path}.type: '{type}' is not a JSON schema type"),
    };

    JsonNodeKind Object(JsonObject s, string path)
    {
        if (s["additionalProperties"] is JsonNode ap && !(ap is JsonValue v && v.GetValueKind() == JsonValueKind.False))
            throw new SioException($"{path}.additionalProperties: sio writes only the declared properties; set it to false");
        var props = s["properties"] as JsonObject ?? (s.ContainsKey("properties") ? throw new SioException($"{path}.properties: must be an object") : new JsonObject());
        var required = (s["required"] as JsonArray ?? []).Select(r => r is JsonValue rv && rv.TryGetValue<string>(out var n) ? n : throw new SioException($"{path}.required: must be a list of names")).ToHashSet();
        foreach (var name in required)
            if (!props.ContainsKey(name)) throw new SioException($"{path}.required: '{name}' is not one of the properties");
        var node = new ObjectNode();
        Add(node);
        node.Properties = [.. props.Select(p => (Encoding.UTF8.GetBytes(Literal(JsonValue.Create(p.Key)) + ":"), required.Contains(p.Key), Compile(p.Value, $"{path}.properties.{p.Key}")))];
        return node;
    }

    JsonNodeKind Reference(JsonNode r, JsonObject s, string path)
    {
        if (s.Count > 1 && s.Any(p => p.Key != "$ref" && !Annotations.Contains(p.Key))) throw new SioException($"{path}: sio takes $ref alone, without other keywords beside it");
        var target = r is JsonValue v && v.TryGetValue<string>(out var t) ? t : throw new SioException($"{path}.$ref: must be a string");
        if (_refs.TryGetValue(target, out var known)) return known;
        var parts = target.Split('/');
        if (parts is not ["#", "$defs" or "definitions", var name] || document[parts[1]]?[name] is not JsonObject def)
            throw new SioException($"{path}.$ref: '{target}' is not a definition of this schema (#/$defs/NAME)");
        var slot = Add(new UnionNode([])); // filled below, so that a recursive definition can point at itself
        _refs[target] = slot;
        slot.Options = [Compile(def, $"#/{parts[1]}/{name}")];
        return slot;
    }

    JsonNodeKind Union(JsonNodeKind[] options, string path)
    {
        for (int b = 0; b < 256; b++)
            if (options.Count(o => o.Starts((byte)b)) > 1)
                throw new SioException($"{path}: sio needs the alternatives of anyOf (or of a list of types) to start differently, and two of them can start with '{(char)b}' (e.g. an integer and a number, or two objects)");
        return Add(new UnionNode(options));
    }

    static LiteralsNode Literals(JsonArray values, string path)
    {
        var bytes = values.Select(v => Encoding.UTF8.GetBytes(Literal(v))).ToArray();
        if (bytes.Select(Convert.ToHexString).Distinct().Count() != bytes.Length) throw new SioException($"{path}.enum: values must be distinct");
        return new LiteralsNode(bytes);
    }

    static int Count(JsonObject s, string key, int absent, string path) => s[key] switch
    {
        null => absent,
        JsonValue v when v.TryGetValue<int>(out var n) && n >= 0 => n,
        _ => throw new SioException($"{path}.{key}: must be a whole number ≥ 0"),
    };

    T Add<T>(T node) where T : JsonNodeKind
    {
        _nodes.Add(node);
        return node;
    }

    /// <summary>Works out every node's shortest value (to a fixed point, since $ref may recurse), and refuses a schema with none.</summary>
    public void Finish(JsonNodeKind? extra = null)
    {
        if (extra is not null) _nodes.Add(extra);
        for (bool changed = true; changed;)
        {
            changed = false;
            foreach (var node in _nodes)
            {
                int min = Math.Min(Unbounded, Shortest(node));
                if (min < node.MinBytes) { node.MinBytes = min; changed = true; }
            }
        }
        foreach (var node in _nodes)
        {
            if (node.MinBytes >= Unbounded) throw new SioException("schema: some part of it has no finite value (a definition that must contain itself, or minItems too large)");
            if (node is ObjectNode o) Index(o);
        }
    }

    static int Shortest(JsonNodeKind node) => node switch
    {
        ObjectNode o => 2 + o.Properties.Where(p => p.Required).Sum(p => 1 + p.Key.Length + (long)p.Value.MinBytes) is var n && n < Unbounded ? (int)n : Unbounded,
        ArrayNode a => a.MinItems > a.MaxItems ? Unbounded : (int)Math.Min(Unbounded, 2 + (long)a.MinItems * (1 + a.Item.MinBytes)),
        StringNode => 2,
        NumberNode => 1,
        LiteralsNode l => l.Values.Min(v => v.Length),
        UnionNode u => u.Options.Length == 0 ? Unbounded : u.Options.Min(o => o.MinBytes),
        AnyValueNode a => a.ObjectOnly ? 2 : 1,
        PrefixedNode p => (int)Math.Min(Unbounded, p.Options.Min(o => o.Prefix.Length + (long)o.Value.MinBytes) + p.Suffix.Length),
        _ => Unbounded,
    };

    static void Index(ObjectNode o)
    {
        int n = o.Properties.Length;
        o.RequiredFrom = new int[n + 1];
        o.NextRequired = new int[n + 1];
        o.NextRequired[n] = n;
        for (int i = n - 1; i >= 0; i--)
        {
            var p = o.Properties[i];
            o.RequiredFrom[i] = o.RequiredFrom[i + 1] + (p.Required ? 1 + p.Key.Length + p.Value.MinBytes : 0);
            o.NextRequired[i] = p.Required ? i : o.NextRequired[i + 1];
        }
    }
}
