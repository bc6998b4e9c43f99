using Sio.Models;

namespace Sio.Tests;

/// <summary>Where the sample model and datasets are, from the repository root.</summary>
public static class TestPaths
{
    public static readonly string RepoRoot = FindRoot();

    static string FindRoot()
    {
        var dir = AppContext.BaseDirectory;
        while (dir is not null && !File.Exists(Path.Combine(dir, "Serverless.sln"))) dir = Path.GetDirectoryName(dir);
        return dir ?? throw new InvalidOperationException("repository root (Serverless.sln) not found");
    }

    public static string Stories260K => Sample("stories260K", "stories260K.bin");
    public static string Tok512 => Sample("stories260K", "tok512.bin");

    /// <summary>The dev sets, copied into the repository (samples/data): every run reads the same data.</summary>
    public static string TinyStoriesDev => Sample("data", "tinystories-dev.jsonl");
    public static string OpenOrcaDev => Sample("data", "openorca-qa-dev.jsonl");
    public static string AiDreams => Sample("aidreams260K", "aidreams260K.bin");

    /// <summary>A file under samples/; a missing one fails the test that needs it, naming it, rather than let another file stand in.</summary>
    static string Sample(params string[] parts)
    {
        var path = Path.Combine([RepoRoot, "samples", .. parts]);
        return File.Exists(path) ? path : throw new FileNotFoundException($"test data {path} is missing: it is part of the repository (samples/README.md)", path);
    }

    /// <summary>This test run's own temporary root, removed when the run ends (and, if a run was killed, by the next run).</summary>
    static readonly string TempRoot = CreateTempRoot();

    static string CreateTempRoot()
    {
        foreach (var stale in Directory.GetDirectories(Path.GetTempPath(), "sio-tests-run-*"))
            if (int.TryParse(Path.GetFileName(stale)["sio-tests-run-".Length..], out var pid) && !Directory.Exists($"/proc/{pid}"))
                try { Directory.Delete(stale, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        var root = Path.Combine(Path.GetTempPath(), $"sio-tests-run-{Environment.ProcessId}");
        Directory.CreateDirectory(root);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { Directory.Delete(root, true); } catch (IOException) { } catch (UnauthorizedAccessException) { } };
        return root;
    }

    public static string TempDir(string prefix)
    {
        var d = Path.Combine(TempRoot, $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(d);
        return d;
    }
}

/// <summary>stories260K imported once for every test that needs it.</summary>
public sealed class Stories260KFixture : IDisposable
{
    public string Root { get; } = TestPaths.TempDir("stories");
    public string ModelDir { get; }
    public ModelManifest Manifest { get; }

    public Stories260KFixture()
    {
        ModelDir = Path.Combine(Root, "stories260K");
        Manifest = ModelImporter.Import(new ImportRequest { Source = TestPaths.Stories260K }, ModelDir);
    }

    public void Dispose() { try { Directory.Delete(Root, true); } catch (IOException) { } }
}

[CollectionDefinition("stories260K")]
public sealed class Stories260KCollection : ICollectionFixture<Stories260KFixture>;
