using System.Text;

namespace Sio.Serving;

/// <summary>
/// Turns chat messages into a prompt. sio's plain template: each message's content followed by a
/// blank line, so a base model reads a system prompt, the question and then answers; the same
/// layout `sio eval` uses for OpenOrca rows (<see cref="Evaluation.PromptFormat"/>).
/// </summary>
public static class ChatTemplate
{
    public static string Apply(IEnumerable<(string Role, string Content)> messages)
    {
        var sb = new StringBuilder();
        foreach (var (role, content) in messages)
        {
            if (role is not ("system" or "user" or "assistant" or "developer"))
                throw new SioException($"messages: unknown role '{role}' (system, user, assistant)");
            sb.Append(content).Append("\n\n");
        }
        return sb.ToString();
    }
}
