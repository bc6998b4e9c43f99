using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sio.Evaluation;

/// <summary>
/// One usable row: a text to score whole, or a prompt whose response is scored. Rows that are conversations
/// (OpenOrca's system prompt and question, chat messages, ShareGPT) also keep their turns, so that a chat model is
/// prompted through its own template (<see cref="RecordPrompt"/>); <see cref="Prompt"/> is their plain layout.
/// </summary>
public sealed record DatasetRecord(string? Text, string? Prompt, string? Response, IReadOnlyList<(string Role, string Content)>? Turns = null)
{
    public bool IsPromptResponse => Prompt is not null;
}

/// <summary>Rows read from a dataset file, with the count of rows that could not be used.</summary>
public sealed record Dataset(string Path, IReadOnlyList<DatasetRecord> Records, int Skipped, string Sha256);

/// <summary>
/// Reads the user's data: JSONL with <c>text</c>; <c>prompt</c>/<c>response</c> (or <c>completion</c>);
/// OpenOrca <c>system_prompt</c>/<c>question</c>/<c>response</c>; chat <c>messages</c> (the last
/// assistant turn is the response); ShareGPT <c>conversations</c>. Any other file is plain text, one
/// record per paragraph. Unusable rows are skipped and counted.
/// </summary>
public static class DatasetReader
{
    public static Dataset Read(string path, int maxRecords = int.MaxValue)
    {
        if (!File.Exists(path)) throw SioException.InFile(path, "dataset not found");
        var records = new List<DatasetRecord>();
        int skipped = 0;
        var lines = ReadUtf8Lines(path);
        bool jsonl = lines.FirstOrDefault(l => l.Trim().Length > 0)?.TrimStart().StartsWith('{') ?? false;
        if (jsonl)
        {
            foreach (var line in lines)
            {
                if (records.Count >= maxRecords) break;
                if (line.Trim().Length == 0) continue;
                var r = ParseRow(line);
                if (r is null) skipped++;
                else records.Add(r);
            }
        }
        else
        {
            foreach (var para in string.Join("\n", lines).Split("\n\n", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (records.Count >= maxRecords) break;
                records.Add(new DatasetRecord(para, null, null));
            }
        }
        if (records.Count == 0)
            throw SioException.InFile(path, skipped > 0 ? $"no usable row ({skipped} rows skipped: each needs text, prompt/response, question/response or messages)" : "the dataset is empty");
        return new Dataset(path, records, skipped, Models.ModelManifest.Sha256File(path));
    }

    /// <summary>The file's lines, refusing bytes that are not UTF-8 (naming the line) rather than reading them as replacement characters.</summary>
    static string[] ReadUtf8Lines(string path)
    {
        var strict = new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
        var bytes = File.ReadAllBytes(path).AsSpan();
        if (bytes.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) bytes = bytes[3..];
        var lines = new List<string>();
        while (true)
        {
            int end = bytes.IndexOf((byte)'\n');
            var line = end < 0 ? bytes : bytes[..end];
            if (line.EndsWith((ReadOnlySpan<byte>)[(byte)'\r'])) line = line[..^1];
            try { lines.Add(strict.GetString(line)); }
            catch (System.Text.DecoderFallbackException)
            {
                throw SioException.InFile(path, $"line {lines.Count + 1} is not valid UTF-8; convert the file to UTF-8 (for example with iconv)");
            }
            if (end < 0) break;
            bytes = bytes[(end + 1)..];
        }
        if (lines.Count > 0 && lines[^1].Length == 0) lines.RemoveAt(lines.Count - 1);
        return lines.ToArray();
    }

    static string? Str(JsonObject o, string key) => o[key] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;

    static DatasetRecord? ParseRow(string line)
    {
        JsonObject o;
        try { if (JsonNode.Parse(line) is JsonObject obj) o = obj; else return null; }
        catch (JsonException) { return null; }

        if (Str(o, "text") is { Length: > 0 } text) return new DatasetRecord(text, null, null);
        if (Str(o, "question") is { Length: > 0 } q && Str(o, "response") is { Length: > 0 } resp)
        {
            var system = Str(o, "system_prompt");
            List<(string, string)> question = string.IsNullOrWhiteSpace(system) ? [("user", q)] : [("system", system), ("user", q)];
            return new DatasetRecord(null, PromptFormat.Join(system, q), resp, question);
        }
        if (Str(o, "prompt") is { Length: > 0 } p)
            return new DatasetRecord(null, p, Str(o, "response") ?? Str(o, "completion") ?? "");
        var turns = o["messages"] as JsonArray ?? o["conversations"] as JsonArray;
        if (turns is not null)
        {
            var msgs = new List<(string Role, string Content)>();
            foreach (var t in turns)
            {
                if (t is not JsonObject m) return null;
                var role = Str(m, "role") ?? Str(m, "from");
                var content = Str(m, "content") ?? Str(m, "value");
                if (role is null || content is null) return null;
                msgs.Add((role is "human" or "user" ? "user" : role is "gpt" or "assistant" ? "assistant" : role, content));
            }
            if (msgs.Count == 0) return null;
            var lastAssistant = msgs.FindLastIndex(m => m.Role == "assistant");
            var promptTurns = lastAssistant > 0 ? msgs.Take(lastAssistant) : msgs;
            var prompt = string.Join("\n\n", promptTurns.Select(m => m.Content)) + "\n\n";
            return new DatasetRecord(null, prompt, lastAssistant > 0 ? msgs[lastAssistant].Content : "", promptTurns.ToList());
        }
        return null;
    }
}

/// <summary>How sio lays out system prompt and question for a base model.</summary>
public static class PromptFormat
{
    public static string Join(string? system, string question) =>
        string.IsNullOrWhiteSpace(system) ? $"{question}\n\n" : $"{system}\n\n{question}\n\n";
}
