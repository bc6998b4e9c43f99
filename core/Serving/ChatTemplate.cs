using System.Text;
using System.Text.Json.Nodes;

namespace Sio.Serving;

/// <summary>
/// Turns chat messages into a prompt. A model's tokenizer_config.json chat_template is recognised by
/// family (Llama 2 / Mistral [INST], Zephyr &lt;|user|&gt;, ChatML &lt;|im_start|&gt;) and rendered with
/// that family's layout; sio does not run arbitrary Jinja. Anything else falls back to the plain
/// template: each message's content followed by a blank line, the layout `sio eval` uses for
/// OpenOrca rows (<see cref="Evaluation.PromptFormat"/>).
/// </summary>
public sealed class ChatTemplate
{
    public enum Family { Plain, Llama2, Zephyr, ChatML }

    public Family Kind { get; }
    ChatTemplate(Family kind) => Kind = kind;

    public static readonly ChatTemplate Plain = new(Family.Plain);

    /// <summary>The template a model folder's tokenizer_config.json names, or the plain one.</summary>
    public static ChatTemplate ForModel(string folder)
    {
        var path = Path.Combine(folder, "tokenizer_config.json");
        if (!File.Exists(path)) return Plain;
        string? template = null;
        try
        {
            template = JsonNode.Parse(File.ReadAllText(path))?["chat_template"] switch
            {
                JsonValue v => v.GetValue<string>(),
                JsonArray a => a.FirstOrDefault(t => t?["name"]?.GetValue<string>() == "default")?["template"]?.GetValue<string>(),
                _ => null,
            };
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or IOException) { return Plain; }
        if (template is null) return Plain;
        if (template.Contains("<|im_start|>")) return new(Family.ChatML);
        if (template.Contains("<|user|>")) return new(Family.Zephyr);
        if (template.Contains("[INST]")) return new(Family.Llama2);
        return Plain;
    }

    /// <summary>The prompt text; special-token markers in it (&lt;s&gt;, &lt;/s&gt;, …) are meant as tokens.</summary>
    public string Render(IEnumerable<(string Role, string Content)> messages)
    {
        var list = messages.ToList();
        foreach (var (role, _) in list)
            if (role is not ("system" or "user" or "assistant" or "developer"))
                throw new SioException($"messages: unknown role '{role}' (system, user, assistant)");
        var sb = new StringBuilder();
        switch (Kind)
        {
            case Family.ChatML:
                foreach (var (role, content) in list) sb.Append($"<|im_start|>{(role == "developer" ? "system" : role)}\n{content}<|im_end|>\n");
                sb.Append("<|im_start|>assistant\n");
                break;
            case Family.Zephyr:
                foreach (var (role, content) in list) sb.Append($"<|{(role == "developer" ? "system" : role)}|>\n{content}</s>\n");
                sb.Append("<|assistant|>\n");
                break;
            case Family.Llama2:
                string? system = null;
                bool first = true;
                foreach (var (role, content) in list)
                {
                    if (role is "system" or "developer") { system = content; continue; }
                    if (role == "user")
                    {
                        var text = system is null ? content : $"<<SYS>>\n{system}\n<</SYS>>\n\n{content}";
                        system = null;
                        sb.Append(first ? "" : "<s>").Append($"[INST] {text.Trim()} [/INST]");
                        first = false;
                    }
                    else sb.Append($" {content.Trim()} </s>");
                }
                break;
            default:
                foreach (var (_, content) in list) sb.Append(content).Append("\n\n");
                break;
        }
        return sb.ToString();
    }

    /// <summary>The plain template, for callers without a model folder.</summary>
    public static string Apply(IEnumerable<(string Role, string Content)> messages) => Plain.Render(messages);
}
