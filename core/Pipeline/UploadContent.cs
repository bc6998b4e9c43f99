using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sio.Pipeline;

/// <summary>
/// What an upload must be, by its name: a llama2.c checkpoint or tokenizer (.bin), a zip holding a model, a tokenizer
/// file, or a dataset. <see cref="Problem"/> reads the file and says what is wrong with it, or null.
/// </summary>
public static class UploadContent
{
    public static string? Problem(string name, string file) => CheckContent(name, file);

    static string? CheckContent(string name, string file)
    {
        var ext = Path.GetExtension(name).ToLowerInvariant();
        var stem = Path.GetFileName(name).ToLowerInvariant();
        try
        {
            switch (ext)
            {
                case ".bin" when stem.StartsWith("tok"):
                    Tokenization.TokenizerLoader.LoadFile(file, 0, 1, 2);
                    return null;
                case ".bin":
                    using (new Models.Llama2cCheckpoint(file)) return null;
                case ".zip":
                    using (var zip = ZipFile.OpenRead(file))
                    {
                        var names = zip.Entries.Select(e => e.FullName).ToList();
                        if (names.Any(n => n.Contains("..") || n.StartsWith('/') || n.Contains('\\'))) return $"{name} has entries with unsafe paths";
                        bool model = names.Any(n => Path.GetFileName(n) is "sio.json" or "config.json" || (n.EndsWith(".bin") && !Path.GetFileName(n).StartsWith("tok")));
                        return model ? null : $"{name} holds no model (sio.json, config.json or a llama2.c .bin)";
                    }
                case ".json" when stem.StartsWith("tokenizer"):
                    return TokenizerJsonProblem(name, file);
                case ".model":
                    Tokenization.SentencePieceModelTokenizer.Load(file);
                    return null;
                case ".jsonl" when !FirstLineIsJsonObject(file):
                    return $"{name}: a .jsonl dataset holds one JSON object per line (text, prompt/response, question/response or messages)";
                case ".json" when !IsJson(file):
                    return $"{name}: not valid JSON";
                case ".jsonl" or ".json" or ".txt":
                    return Evaluation.DatasetReader.Read(file).Records.Count > 0 ? null : $"{name} has no usable records";
                default:
                    return $"{name}: expected .bin (llama2.c checkpoint or tok*.bin tokenizer), .zip (a model folder), tokenizer.json, .model, or a .jsonl/.json/.txt dataset";
            }
        }
        catch (Exception e) when (e is SioException or InvalidDataException or IOException or JsonException or ArgumentException or FormatException
            or InvalidOperationException or Google.Protobuf.InvalidProtocolBufferException)
        {
            return $"{name}: {e.Message}";
        }
    }

    static bool FirstLineIsJsonObject(string file)
    {
        var first = File.ReadLines(file).FirstOrDefault(l => l.Trim().Length > 0);
        try { return first is not null && JsonNode.Parse(first) is JsonObject; }
        catch (JsonException) { return false; }
    }

    static bool IsJson(string file)
    {
        try { using var s = File.OpenRead(file); using var _ = JsonDocument.Parse(s); return true; }
        catch (JsonException) { return false; }
    }

    /// <summary>A tokenizer.json must be a JSON object whose "model" names its type and vocabulary.</summary>
    static string? TokenizerJsonProblem(string name, string file)
    {
        JsonNode? root;
        try { using var s = File.OpenRead(file); root = JsonNode.Parse(s); }
        catch (JsonException e) { return $"{name}: not valid JSON ({e.Message})"; }
        if (root is not JsonObject o || o["model"] is not JsonObject model) return $"{name}: not a tokenizer.json (no \"model\" object)";
        if (model["type"] is not JsonValue t || t.GetValueKind() != JsonValueKind.String) return $"{name}: not a tokenizer.json (\"model\" has no \"type\")";
        if (model["vocab"] is not (JsonObject or JsonArray)) return $"{name}: not a tokenizer.json (\"model\" has no \"vocab\")";
        return null;
    }
}
