using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using Sio.Generation;
using Sio.Serving;
using Sio.Tokenization;

namespace Sio.Tests;

/// <summary>
/// Constrained decoding to JSON schemas over real vocabularies (llama2.c's 512 SentencePiece tokens and Qwen3's
/// 151,669 byte-level BPE tokens): whatever the logits (random here, so every branch gets taken), and however short
/// the budget, the output parses and validates against its schema — checked by JsonSchema.Net, a validator no one
/// here wrote. And schemas sio cannot enforce are refused with the path of the keyword.
/// </summary>
[Trait("Category", "fast")]
public class StructuredOutputTests
{
    public static readonly string Person = """
        {"type": "object", "additionalProperties": false, "required": ["name", "age", "role"],
         "properties": {
           "name": {"type": "string", "description": "full name"},
           "age": {"type": "integer"},
           "email": {"type": ["string", "null"]},
           "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
           "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}}, "required": ["city"], "additionalProperties": false},
           "role": {"enum": ["admin", "user", "guest"]},
           "score": {"type": "number"},
           "active": {"type": "boolean"}}}
        """;

    public static readonly string Tree = """
        {"type": "object", "required": ["root"], "properties": {"root": {"$ref": "#/$defs/node"}},
         "$defs": {"node": {"type": "object", "required": ["value"], "properties": {
           "value": {"type": "integer"},
           "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}}}}}
        """;

    public static readonly string Mixed = """
        {"type": "object", "required": ["level", "matrix", "quote"], "properties": {
           "level": {"enum": [1, 12, "x\"y", null]},
           "fixed": {"const": "fixed \\ value"},
           "matrix": {"type": "array", "minItems": 1, "items": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number"}}},
           "quote": {"type": "string"},
           "anything": {}}}
        """;

    static readonly Lazy<Tokenizer> Llama = new(() => TokenizerLoader.LoadFile(TestPaths.Tok512, 512, 1, 2));
    static readonly Lazy<Tokenizer> Qwen = new(() => HuggingFaceTokenizer.Load(Path.Combine(NpmReference.ModelFiles("qwen3"), "tokenizer.json"), 0, -1, -1));

    [Theory]
    [InlineData("llama", "person")]
    [InlineData("llama", "tree")]
    [InlineData("llama", "mixed")]
    [InlineData("qwen", "person")]
    [InlineData("qwen", "tree")]
    [InlineData("qwen", "mixed")]
    public void EveryOutputValidatesAgainstItsSchema(string vocabulary, string name)
    {
        var tokenizer = vocabulary == "llama" ? Llama.Value : Qwen.Value;
        var text = name switch { "person" => Person, "tree" => Tree, _ => Mixed };
        var grammar = JsonGrammar.FromSchema((JsonObject)JsonNode.Parse(text)!, name);
        var schema = JsonSchema.FromText(text, baseUri: new Uri($"https://sio.test/{vocabulary}/{name}"));
        int stop = Stop(tokenizer);
        foreach (var budget in new[] { grammar.MinTokens, grammar.MinTokens + 3, grammar.MinTokens + 80 })
            for (int seed = 0; seed < (vocabulary == "llama" ? 8 : 4); seed++)
            {
                var output = Generate(tokenizer, grammar, stop, budget, seed, out int used);
                Assert.InRange(used, 1, budget);
                using var doc = JsonDocument.Parse(output); // throws if it is not JSON
                var result = schema.Evaluate(doc.RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });
                Assert.True(result.IsValid, $"budget {budget}, seed {seed}: {output}\n{JsonSerializer.Serialize(result)}");
            }
    }

    /// <summary>A forced tool call: the function's name, then arguments under that function's own schema, in the template's markers.</summary>
    [Fact]
    public void AForcedToolCallNamesAnOfferedFunctionWithValidArguments()
    {
        var weather = (JsonObject)JsonNode.Parse("""{"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}}, "required": ["city", "unit"]}""")!;
        var time = (JsonObject)JsonNode.Parse("""{"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}""")!;
        var functions = new List<ToolFunction> { new("get_weather", weather), new("get_time", time), new("get_weather_alerts", null) };
        var grammar = ToolCallFormat.Hermes.Grammar(functions);
        var schemas = functions.ToDictionary(f => f.Name, f => JsonSchema.FromText(f.Parameters?.ToJsonString() ?? "{\"type\": \"object\"}", baseUri: new Uri($"https://sio.test/tool/{f.Name}")));
        var names = new HashSet<string>(schemas.Keys);
        var seen = new HashSet<string>();
        for (int seed = 0; seed < 12; seed++)
        {
            var output = Generate(Qwen.Value, grammar, Stop(Qwen.Value), 80, seed, out _);
            Assert.StartsWith("<tool_call>\n{\"name\":", output);
            var (content, calls) = ToolCallFormat.Hermes.Parse(output, names);
            Assert.Null(content);
            var call = Assert.Single(calls);
            using var args = JsonDocument.Parse(call.Arguments);
            Assert.True(schemas[call.Name].Evaluate(args.RootElement).IsValid, output);
            seen.Add(call.Name);
        }
        Assert.True(seen.Count >= 2, $"random logits should reach more than one function: {string.Join(", ", seen)}");
    }

    [Fact]
    public void ToolCallsAreReadBackFromTheTemplatesFormat()
    {
        var names = new HashSet<string> { "get_weather" };
        var (content, calls) = ToolCallFormat.Hermes.Parse("Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>", names);
        Assert.Equal("Let me check.", content);
        Assert.Equal(("get_weather", "{\"city\":\"Paris\"}"), (calls.Single().Name, calls.Single().Arguments));
        // Llama 3.1's bare object with "parameters"; an unknown function or broken JSON stays text
        var llama = ToolCallFormat.Of("… {\"name\": function name, \"parameters\": dictionary of argument name and its value} …");
        Assert.Equal("parameters", llama.ArgumentsKey);
        Assert.Single(llama.Parse("{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\"}}", names).Calls);
        Assert.Empty(llama.Parse("{\"name\": \"rm_rf\", \"parameters\": {}}", names).Calls);
        Assert.Equal("<tool_call>{\"name\": \"get_weather\", broken", ToolCallFormat.Hermes.Parse("<tool_call>{\"name\": \"get_weather\", broken", names).Content);
        Assert.True(ToolCallFormat.Hermes.MayBeCall("  <tool_"));
        Assert.False(ToolCallFormat.Hermes.MayBeCall("The weather"));
    }

    [Theory]
    [InlineData("""{"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]+$"}}}""", "schema.properties.code: sio does not enforce the schema keyword 'pattern'")]
    [InlineData("""{"type": "object", "properties": {"n": {"anyOf": [{"type": "integer"}, {"type": "number"}]}}}""", "schema.properties.n: sio needs the alternatives of anyOf")]
    [InlineData("""{"type": "object", "additionalProperties": true}""", "schema.additionalProperties: sio writes only the declared properties")]
    [InlineData("""{"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}""", "schema.properties.a.$ref: '#/$defs/missing' is not a definition")]
    [InlineData("""{"type": "array", "items": {"type": "string"}}""", "schema: the top level must be an object")]
    [InlineData("""{"type": "object", "required": ["b"], "properties": {"a": {"type": "string"}}}""", "schema.required: 'b' is not one of the properties")]
    [InlineData("""{"type": "object", "required": ["self"], "properties": {"self": {"$ref": "#/$defs/loop"}}, "$defs": {"loop": {"type": "object", "required": ["next"], "properties": {"next": {"$ref": "#/$defs/loop"}}}}}""", "no finite value")]
    public void SchemasSioCannotEnforceAreRefusedByPath(string schema, string message)
    {
        var e = Assert.Throws<SioException>(() => JsonGrammar.FromSchema((JsonObject)JsonNode.Parse(schema)!, "x"));
        Assert.Contains(message, e.Message);
    }

    static int Stop(Tokenizer tokenizer) =>
        tokenizer is HuggingFaceTokenizer ? tokenizer.EncodeWithSpecialTokens("<|im_end|>", addBos: false).Single() : tokenizer.EosTokenId;

    /// <summary>Decodes under the constraint from random logits until the stop token; the output's text.</summary>
    static string Generate(Tokenizer tokenizer, JsonGrammar grammar, int stop, int budget, int seed, out int used)
    {
        var constraint = new JsonConstraint(tokenizer, [stop], budget, grammar);
        var random = new Random(seed);
        var logits = new float[tokenizer.VocabSize];
        var bytes = new List<byte>();
        for (used = 0; used < budget; used++)
        {
            for (int i = 0; i < logits.Length; i++) logits[i] = (float)(random.NextDouble() * 8);
            constraint.Mask(logits);
            int token = Array.IndexOf(logits, logits.Max());
            if (token == stop) break;
            constraint.Advance(token);
            bytes.AddRange(tokenizer.TokenBytes(token, -1).ToArray());
        }
        Assert.True(constraint.Complete, $"budget {budget}, seed {seed}: incomplete {Encoding.UTF8.GetString([.. bytes])}");
        return Encoding.UTF8.GetString([.. bytes]);
    }
}
