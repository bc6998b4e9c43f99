namespace Sio.Tokenization;

/// <summary>Finds and loads the tokenizer of a model folder, or a tokenizer file by its name.</summary>
public static class TokenizerLoader
{
    /// <summary>The file names sio recognises, in the order a folder is searched.</summary>
    public static readonly string[] FileNames = ["tokenizer.bin", "tokenizer.json", "tokenizer.model"];

    /// <summary>Loads a tokenizer file. A llama2.c tokenizer.bin is recognised by its content, whatever its name.</summary>
    public static Tokenizer LoadFile(string path, int vocabSize, int bos, int eos)
    {
        if (!File.Exists(path)) throw SioException.InFile(path, "tokenizer file not found");
        var name = Path.GetFileName(path);
        if (name.EndsWith(".json")) return HuggingFaceTokenizer.Load(path, vocabSize, bos, eos);
        if (name.EndsWith(".model")) return SentencePieceModelTokenizer.Load(path, vocabSize);
        return SentencePieceBpeTokenizer.FromLlama2c(path, vocabSize, bos, eos);
    }

    /// <summary>The first recognised tokenizer file in a folder, or null.</summary>
    public static string? FindIn(string folder) =>
        FileNames.Select(f => Path.Combine(folder, f)).FirstOrDefault(File.Exists);

    public static Tokenizer LoadFromFolder(string folder, int vocabSize, int bos, int eos)
    {
        var file = FindIn(folder) ?? throw SioException.InFile(folder, $"missing tokenizer: none of {string.Join(", ", FileNames)} is there");
        return LoadFile(file, vocabSize, bos, eos);
    }

    /// <summary>
    /// The tokenizer of a sio model folder (its manifest names the file and vocabulary), of a Hugging Face folder, or a
    /// tokenizer file; <paramref name="folder"/> is where its tokenizer_config.json (chat template) would be.
    /// </summary>
    public static Tokenizer Open(string path, out string folder)
    {
        if (Directory.Exists(path))
        {
            folder = path;
            if (File.Exists(Path.Combine(path, Models.ModelManifest.FileName)))
            {
                var m = Models.ModelManifest.Load(path);
                return LoadFile(Path.Combine(path, m.Tokenizer.File), m.Config.VocabSize, m.Config.BosTokenId, m.Config.EosTokenId);
            }
            var file = FindIn(path) ?? throw SioException.InFile(path, $"missing tokenizer: none of {string.Join(", ", FileNames)} is there");
            return Open(file, out _);
        }
        if (!File.Exists(path)) throw SioException.InFile(path, "no such tokenizer file or model folder");
        folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
        bool llama2c = !path.EndsWith(".json") && !path.EndsWith(".model");
        return LoadFile(path, llama2c ? SentencePieceBpeTokenizer.CountLlama2cTokens(path) : 0, 1, 2);
    }
}
