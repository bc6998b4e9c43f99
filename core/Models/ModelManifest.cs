using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sio.Models;

/// <summary>
/// <c>sio.json</c>: what a model folder holds and where it came from. Every sio command reads it
/// first; techniques append the steps they applied.
/// </summary>
public sealed record ModelManifest
{
    public const string FileName = "sio.json";
    public const string CurrentFormat = "sio-model/1";

    public string Format { get; init; } = CurrentFormat;
    public required string Architecture { get; init; }
    public required DecoderConfig Config { get; init; }
    public int SlidingWindow { get; init; }
    /// <summary>Weight precision of the graph (float32, or int4 after quantization).</summary>
    public string Dtype { get; init; } = "float32";
    public required ModelSource Source { get; init; }
    public required TokenizerInfo Tokenizer { get; init; }
    /// <summary>llama2.c models also stop at BOS, as llama2.c's run.c does.</summary>
    public bool StopOnBos { get; init; }
    /// <summary>
    /// Ids that end a generation (end of text and end of turn): generation_config.json's eos_token_id list, config.json's,
    /// and the tokenizer's eos_token. Empty in manifests written before sio recorded them: then EOS (and BOS for llama2.c).
    /// </summary>
    public List<int> StopTokens { get; init; } = [];
    public string ModelFile { get; init; } = DecoderGraph.ModelFile;
    public List<string> Steps { get; init; } = [];
    /// <summary>Set by <c>sio compile</c>: the ahead-of-time optimized graph beside the original, and what it was built for.</summary>
    public CompiledInfo? Compiled { get; init; }
    public DateTime CreatedUtc { get; init; } = DateTime.UtcNow;

    public sealed record ModelSource(string Kind, string Path, string Sha256);
    public sealed record TokenizerInfo(string File, string Format, int VocabSize, string Fingerprint);
    /// <summary>The compiled graph (ModelFile), its format, cache key, and the runtime and hardware it is valid for.</summary>
    public sealed record CompiledInfo(string Target, string Format, string ModelFile, string Key, string OrtVersion, string Hardware, string HardwareDescription);

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    public void Save(string folder) => File.WriteAllText(System.IO.Path.Combine(folder, FileName), JsonSerializer.Serialize(this, Json));

    public static ModelManifest Load(string folder)
    {
        var path = System.IO.Path.Combine(folder, FileName);
        if (!Directory.Exists(folder)) throw SioException.InFile(folder, "model folder not found");
        if (!File.Exists(path)) throw SioException.InFile(folder, $"not a sio model folder: {FileName} is missing (create one with 'sio import')");
        try
        {
            var m = JsonSerializer.Deserialize<ModelManifest>(File.ReadAllText(path), Json) ?? throw SioException.InFile(path, "empty manifest");
            if (m.Format != CurrentFormat) throw SioException.InFile(path, $"unsupported manifest format {m.Format} (expected {CurrentFormat})");
            m.Config.Validate(path);
            foreach (var (field, name) in new[] { ("model_file", m.ModelFile), ("tokenizer.file", m.Tokenizer.File), ("compiled.model_file", m.Compiled?.ModelFile) })
                if (name is not null && (name.Length == 0 || name != System.IO.Path.GetFileName(name) || name is "." or ".."))
                    throw SioException.InFile(path, $"{field} '{name}' must be a file name inside the model folder");
            return m;
        }
        catch (JsonException e)
        {
            throw SioException.InFile(path, $"broken manifest ({e.Message})");
        }
    }

    /// <summary>sha256 of a file, streamed.</summary>
    public static string Sha256File(string path)
    {
        using var s = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(s));
    }

    /// <summary>sha256 over the names and hashes of a folder's files (sorted), for folder sources.</summary>
    public static string Sha256Folder(string folder, Func<string, bool>? include = null)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var f in Directory.GetFiles(folder).Order(StringComparer.Ordinal).Where(f => include?.Invoke(f) ?? true))
            sha.AppendData(System.Text.Encoding.UTF8.GetBytes($"{System.IO.Path.GetFileName(f)}:{Sha256File(f)}\n"));
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }
}
