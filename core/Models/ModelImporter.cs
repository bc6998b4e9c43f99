using System.Text;
using Sio.Artifacts;
using Sio.Tokenization;

namespace Sio.Models;

/// <summary>What to import: a llama2.c checkpoint, a Hugging Face folder, or a synthetic shape.</summary>
public sealed record ImportRequest
{
    /// <summary>A llama2.c .bin or a Hugging Face folder; null for synthetic.</summary>
    public string? Source { get; init; }
    /// <summary>A tokenizer file that overrides the one found beside the source.</summary>
    public string? Tokenizer { get; init; }
    /// <summary>The shape of a synthetic model (random weights).</summary>
    public DecoderConfig? Synthetic { get; init; }
    public int Seed { get; init; } = 1234;
}

/// <summary>
/// Turns a checkpoint into a model folder: model.onnx (+ external data), genai_config.json, the
/// tokenizer files and sio.json. The folder is built beside the destination and renamed into place,
/// so a failure never leaves a half-written model.
/// </summary>
public static class ModelImporter
{
    static readonly string[] TokenizerExtras = ["tokenizer_config.json", "special_tokens_map.json"];

    public static ModelManifest Import(ImportRequest request, string outDir, IProgress<string>? progress = null)
    {
        using var output = OutputFolder.Begin(outDir, [request.Source, request.Tokenizer], CheckDestination);
        using var checkpoint = Open(request, out var kind);
        var c = checkpoint.Config;
        var slidingWindow = checkpoint is HuggingFaceCheckpoint hf ? hf.SlidingWindow : 0;

        var temp = output.Temp;
        var tokenizer = WriteTokenizer(request, checkpoint, kind, temp, out var loaded);
        progress?.Report("building graph");
        DecoderGraph.Build(checkpoint, temp, slidingWindow, progress);
        GenAiConfig.Write(temp, c);
        var manifest = new ModelManifest
        {
            Architecture = c.Architecture,
            Config = c,
            SlidingWindow = slidingWindow,
            Source = new ModelManifest.ModelSource(kind, request.Source is null ? checkpoint.Source : Path.GetFullPath(request.Source), SourceHash(request, kind)),
            Tokenizer = tokenizer,
            StopOnBos = kind == "llama2c",
            StopTokens = StopTokens(request, kind, checkpoint, loaded),
            Steps = [$"import:{kind}"],
        };
        manifest.Save(temp);
        output.Commit();
        return manifest;
    }

    public static void CheckDestination(string outDir)
    {
        if (File.Exists(outDir)) throw SioException.InFile(outDir, "the output path is a file, not a folder");
        if (Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any() && !File.Exists(Path.Combine(outDir, ModelManifest.FileName)))
            throw SioException.InFile(outDir, "the output folder exists and is not a sio model folder; choose another --out or empty it");
    }


    static ICheckpoint Open(ImportRequest r, out string kind)
    {
        if (r.Synthetic is not null)
        {
            kind = "synthetic";
            return new SyntheticCheckpoint(r.Synthetic, r.Seed);
        }
        if (string.IsNullOrEmpty(r.Source)) throw new SioException("import: give a checkpoint (llama2.c .bin or Hugging Face folder) or --synthetic");
        if (Directory.Exists(r.Source)) { kind = "huggingface"; return new HuggingFaceCheckpoint(r.Source); }
        if (!File.Exists(r.Source)) throw SioException.InFile(r.Source, "not found");
        if (r.Source.EndsWith(".safetensors") || r.Source.EndsWith(".json"))
            throw SioException.InFile(r.Source, "pass the Hugging Face model folder, not one of its files");
        kind = "llama2c";
        return new Llama2cCheckpoint(r.Source);
    }

    static string SourceHash(ImportRequest r, string kind) => kind switch
    {
        "synthetic" => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(
            Encoding.UTF8.GetBytes($"{System.Text.Json.JsonSerializer.Serialize(r.Synthetic)}|{r.Seed}"))),
        "huggingface" => ModelManifest.Sha256Folder(r.Source!, f => f.EndsWith(".safetensors") || f.EndsWith(".json")),
        _ => ModelManifest.Sha256File(r.Source!),
    };

    /// <summary>EOS and end-of-turn ids: generation_config.json's eos_token_id (an id or a list), config.json's, the tokenizer's.</summary>
    static List<int> StopTokens(ImportRequest r, string kind, ICheckpoint checkpoint, Tokenizer tokenizer)
    {
        var c = checkpoint.Config;
        var stops = new List<int> { c.EosTokenId };
        if (kind == "llama2c") stops.Add(c.BosTokenId);
        if (kind == "huggingface")
        {
            var generation = Path.Combine(r.Source!, "generation_config.json");
            if (File.Exists(generation)) stops.AddRange(ConfigJson.Load(generation).Ids("eos_token_id", c.VocabSize));
            stops.AddRange(((HuggingFaceCheckpoint)checkpoint).EosTokenIds);
        }
        if (tokenizer.EosTokenId >= 0 && tokenizer.EosTokenId < c.VocabSize) stops.Add(tokenizer.EosTokenId);
        return stops.Distinct().ToList();
    }

    static ModelManifest.TokenizerInfo WriteTokenizer(ImportRequest r, ICheckpoint checkpoint, string kind, string folder, out Tokenizer tokenizer)
    {
        var c = checkpoint.Config;
        string file;
        if (kind == "synthetic" && r.Tokenizer is null)
        {
            file = Path.Combine(folder, "tokenizer.bin");
            WriteSyntheticTokenizer(file, c.VocabSize);
            tokenizer = TokenizerLoader.LoadFile(file, c.VocabSize, c.BosTokenId, c.EosTokenId);
        }
        else
        {
            var source = r.Tokenizer ?? FindTokenizer(r.Source!, kind);
            tokenizer = TokenizerLoader.LoadFile(source, c.VocabSize, c.BosTokenId, c.EosTokenId);
            // a tokenizer may name special tokens past the model's vocabulary (Gemma 3's <image_soft_token> for its text-only 1B)
            var loaded = tokenizer;
            if (Enumerable.Range(c.VocabSize, Math.Max(0, loaded.VocabSize - c.VocabSize)).FirstOrDefault(i => !loaded.IsSpecial(i), -1) is var outside and >= 0)
                throw SioException.InFile(source, $"the tokenizer has {tokenizer.VocabSize} tokens, more than the model's vocabulary of {c.VocabSize} (token {outside}, \"{tokenizer.Pieces[outside]}\", is not a special token the model could do without)");
            file = Path.Combine(folder, tokenizer.Format);
            File.Copy(source, file);
            // the chat template, special tokens and generation defaults travel with the tokenizer
            var tokenizerFolder = Path.GetDirectoryName(Path.GetFullPath(source))!;
            var extras = tokenizer.Format == "tokenizer.bin" ? [] : TokenizerExtras.Select(f => Path.Combine(tokenizerFolder, f));
            if (kind == "huggingface") extras = extras.Append(Path.Combine(r.Source!, "generation_config.json"));
            foreach (var e in extras.Where(File.Exists)) File.Copy(e, Path.Combine(folder, Path.GetFileName(e)));
        }
        // A llama2.c vocabulary is also written as tokenizer.json, so ONNX Runtime GenAI can tokenize too.
        if (tokenizer is SentencePieceBpeTokenizer { Format: "tokenizer.bin" } bpe)
            bpe.WriteTokenizerJson(Path.Combine(folder, "tokenizer.json"));
        return new ModelManifest.TokenizerInfo(Path.GetFileName(file), tokenizer.Format, tokenizer.VocabSize, tokenizer.Fingerprint());
    }

    static string FindTokenizer(string source, string kind)
    {
        if (kind == "huggingface")
            return TokenizerLoader.FindIn(source)
                ?? throw SioException.InFile(source, "missing tokenizer: the folder has no tokenizer.json or tokenizer.model (pass --tokenizer FILE)");
        var dir = Path.GetDirectoryName(Path.GetFullPath(source))!;
        var beside = Path.Combine(dir, "tokenizer.bin");
        if (File.Exists(beside)) return beside;
        var candidates = Directory.GetFiles(dir, "tok*.bin");
        if (candidates.Length == 1) return candidates[0];
        throw SioException.InFile(source, $"missing tokenizer: no tokenizer.bin beside the checkpoint{(candidates.Length > 1 ? $" and {candidates.Length} tok*.bin candidates" : "")} (pass --tokenizer FILE)");
    }

    /// <summary>A llama2.c tokenizer for synthetic models: specials, 256 byte pieces, then filler pieces.</summary>
    static void WriteSyntheticTokenizer(string path, int vocab)
    {
        using var w = new BinaryWriter(File.Create(path));
        var pieces = new List<string> { "<unk>", "\n<s>\n", "\n</s>\n" };
        for (int b = 0; b < 256 && pieces.Count < vocab; b++) pieces.Add($"<0x{b:X2}>");
        for (int i = pieces.Count; i < vocab; i++) pieces.Add($" w{i}");
        w.Write(pieces.Max(p => Encoding.UTF8.GetByteCount(p)));
        for (int i = 0; i < pieces.Count; i++)
        {
            var bytes = Encoding.UTF8.GetBytes(pieces[i]);
            w.Write(i < 259 ? 0f : -(float)i);
            w.Write(bytes.Length);
            w.Write(bytes);
        }
    }
}
