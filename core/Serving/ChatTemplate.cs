using System.Text;
using System.Text.Json.Nodes;
using Sio.Templating;
using Sio.Tokenization;

namespace Sio.Serving;

/// <summary>
/// Turns chat messages into a prompt. A model whose tokenizer_config.json has a <c>chat_template</c> is prompted with
/// that Jinja template itself, rendered by <see cref="JinjaTemplate"/> with <c>messages</c>, <c>add_generation_prompt</c>,
/// <c>bos_token</c>, <c>eos_token</c> and <c>tools</c>, as Hugging Face's apply_chat_template does; its markers are
/// tokens and it writes its own BOS. A model without one (llama2.c) gets the plain template: each message's content
/// followed by a blank line, the layout <c>sio eval</c> uses for OpenOrca rows (<see cref="Evaluation.PromptFormat"/>).
/// Serving, the console's playground, <c>sio generate --chat</c> and <c>sio tokenize --chat</c> all come here.
/// </summary>
public sealed class ChatTemplate
{
    readonly JinjaTemplate? _jinja;
    readonly string? _bos, _eos;

    ChatTemplate(JinjaTemplate? jinja, string? bos, string? eos, string source, ToolCallFormat tools) =>
        (_jinja, _bos, _eos, Source, ToolCalls) = (jinja, bos, eos, source, tools);

    public static readonly ChatTemplate Plain = new(null, null, null, "plain", ToolCallFormat.Json);

    /// <summary>How a model of this template writes a tool call (read from the template's own instructions).</summary>
    public ToolCallFormat ToolCalls { get; }

    /// <summary>True for the plain template (no chat_template in the model's files).</summary>
    public bool IsPlain => _jinja is null;
    /// <summary>Where the template came from: a tokenizer_config.json path, or "plain".</summary>
    public string Source { get; }

    /// <summary>The template of a model folder's tokenizer_config.json, or the plain one; a template sio cannot run is an error naming the construct.</summary>
    public static ChatTemplate ForModel(string folder)
    {
        var path = Path.Combine(folder, "tokenizer_config.json");
        var config = TokenizerConfig.Read(path);
        return config.ChatTemplate is null ? Plain : FromText(config.ChatTemplate, config.BosToken, config.EosToken, path);
    }

    public static ChatTemplate FromText(string template, string? bosToken, string? eosToken, string source)
    {
        try { return new ChatTemplate(JinjaTemplate.Parse(template), bosToken, eosToken, source, ToolCallFormat.Of(template)); }
        catch (SioException e) { throw SioException.InFile(source, e.Message); }
    }

    /// <summary>
    /// The prompt for OpenAI-style messages (objects with "role" and "content", and whatever else the template reads,
    /// such as "tool_calls"); <paramref name="variables"/> adds template variables (e.g. enable_thinking).
    /// </summary>
    public string Render(JsonArray messages, bool addGenerationPrompt = true, JsonArray? tools = null, JsonObject? variables = null)
    {
        foreach (var m in messages)
            if (m is not JsonObject o || o["role"] is not JsonValue r || !r.TryGetValue<string>(out var role) || role.Length == 0)
                throw new SioException("messages: every message needs a role (a non-empty string)");
        if (_jinja is null) return RenderPlain(messages);
        var context = new JsonObject
        {
            ["messages"] = messages.DeepClone(),
            ["add_generation_prompt"] = addGenerationPrompt,
            ["bos_token"] = _bos ?? "",
            ["eos_token"] = _eos ?? "",
        };
        if (tools is not null) context["tools"] = tools.DeepClone();
        foreach (var (k, v) in variables ?? []) context[k] = v?.DeepClone();
        return _jinja.Render(context);
    }

    /// <summary>The prompt for (role, content) pairs.</summary>
    public string Render(IEnumerable<(string Role, string Content)> messages) =>
        Render(new JsonArray(messages.Select(m => (JsonNode)new JsonObject { ["role"] = m.Role, ["content"] = m.Content }).ToArray()));

    /// <summary>
    /// The prompt's token ids: a template's output holds its own BOS and special-token markers (which become their ids);
    /// plain text gets the tokenizer's BOS and no markers.
    /// </summary>
    public List<int> Tokenize(Tokenizer tokenizer, string prompt) =>
        IsPlain ? tokenizer.Encode(prompt) : tokenizer.EncodeWithSpecialTokens(prompt, addBos: false);

    static string RenderPlain(JsonArray messages)
    {
        var sb = new StringBuilder();
        foreach (var m in messages) sb.Append(ContentText(m!["content"])).Append("\n\n");
        return sb.ToString();
    }

    /// <summary>A message's content as text: a string, or the text parts of a list.</summary>
    public static string ContentText(JsonNode? content) => content switch
    {
        null => "",
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonArray parts => string.Concat(parts.Select(p => p?["text"] is JsonValue t && t.TryGetValue<string>(out var s) ? s
            : throw new SioException("messages: every content part needs text (a string)"))),
        _ => throw new SioException("messages: content must be a string or a list of text parts"),
    };

    /// <summary>The plain template, for callers without a model folder.</summary>
    public static string Apply(IEnumerable<(string Role, string Content)> messages) => Plain.Render(messages);
}
