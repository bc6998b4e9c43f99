using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using Sio.Artifacts;
using Sio.Models;

namespace Sio.Compilation;

public sealed record CompileConfig
{
    /// <summary>cpu, cuda or tensorrt (the GPU targets need a GPU build of ONNX Runtime and a machine with the provider).</summary>
    public string Target { get; init; } = "cpu";
    /// <summary>The artifact store holding compiled graphs by key; null: the default store.</summary>
    public string? CacheDir { get; init; }
    /// <summary>Compile even when the store has the key.</summary>
    public bool Force { get; init; }
}

public sealed record CompileResult(string Key, bool CacheHit, string Artifact, string OutputDir, string Format,
    double OriginalLoadMs, double CompiledLoadMs, string? DiscardedEntry);

/// <summary>
/// Ahead-of-time graph optimization, cached by content: ONNX Runtime optimizes the graph for the
/// target (fusions, constant folding, layout) and saves it with its weights already prepacked, in
/// ONNX with external data or in ORT format, whichever this machine loads faster. The result is
/// stored under sha256(model files, target, ONNX Runtime version, session options, hardware), so the
/// same model compiles once per kind of machine; the output folder holds the original model too,
/// which the runtime falls back to (with a warning) on a machine the compiled graph was not made for.
/// </summary>
public static class Compiler
{
    public const string Kind = "compile";
    const string OnnxFile = "model.opt.onnx", OrtFile = "model.opt.ort";
    public static readonly string[] Targets = ["cpu", "cuda", "tensorrt"];

    public static string OrtVersion => OrtEnv.Instance().GetVersionString();

    public static CompileResult Run(string inputDir, string? outDir, CompileConfig config, IProgress<string>? progress = null)
    {
        if (!Targets.Contains(config.Target)) throw new SioException($"--target must be cpu, cuda or tensorrt, got '{config.Target}'");
        var manifest = ModelManifest.Load(inputDir);
        if (manifest.Compiled is not null) throw SioException.InFile(inputDir, $"already compiled for {manifest.Compiled.Target}; compile the original model folder");
        RequireProvider(config.Target);
        using var output = OutputFolder.Begin(outDir ?? $"{inputDir.TrimEnd('/', '\\')}-{config.Target}", [inputDir, config.CacheDir], ModelImporter.CheckDestination);
        outDir = output.Destination;

        var store = config.CacheDir is null ? ArtifactStore.Default() : new ArtifactStore(config.CacheDir);
        progress?.Report("hashing the model");
        var modelFiles = Directory.GetFiles(inputDir, "model.onnx*").Order(StringComparer.Ordinal).ToList();
        var key = Key(modelFiles, config.Target);

        var (lookup, artifact, entry, problem) = config.Force ? (ArtifactStore.Lookup.Miss, null, null, null) : store.Find(Kind, key);
        bool hit = lookup == ArtifactStore.Lookup.Hit;
        double originalMs = 0, compiledMs = 0;
        string format;
        if (hit)
        {
            format = entry!.Metadata["format"];
            originalMs = double.Parse(entry.Metadata["original_load_ms"], System.Globalization.CultureInfo.InvariantCulture);
            compiledMs = double.Parse(entry.Metadata["compiled_load_ms"], System.Globalization.CultureInfo.InvariantCulture);
        }
        else
        {
            var work = store.NewWorkFolder();
            try
            {
                progress?.Report("optimizing the graph");
                (format, originalMs, compiledMs) = Build(Path.Combine(inputDir, manifest.ModelFile), work, config.Target);
                artifact = store.Put(Kind, key, work, new Dictionary<string, string>
                {
                    ["format"] = format, ["target"] = config.Target, ["ort_version"] = OrtVersion, ["hardware"] = HardwareFingerprint.Hash,
                    ["hardware_description"] = HardwareFingerprint.Description, ["source"] = Path.GetFullPath(inputDir),
                    ["original_load_ms"] = originalMs.ToString("F1", System.Globalization.CultureInfo.InvariantCulture),
                    ["compiled_load_ms"] = compiledMs.ToString("F1", System.Globalization.CultureInfo.InvariantCulture),
                });
            }
            catch
            {
                if (Directory.Exists(work)) Directory.Delete(work, true);
                throw;
            }
        }

        // the output folder: the original files and the compiled graph side by side
        progress?.Report("writing the model folder");
        var temp = output.Temp;
        // the large, never-rewritten graph files are hard-linked where possible; everything else is copied, since
        // a write through a link would change the source folder or the store
        foreach (var f in Directory.GetFiles(inputDir))
        {
            var name = Path.GetFileName(f);
            if (name.StartsWith("model.onnx")) LinkOrCopy(f, Path.Combine(temp, name));
            else if (name != ModelManifest.FileName) File.Copy(f, Path.Combine(temp, name));
        }
        foreach (var f in Directory.GetFiles(artifact!).Where(f => Path.GetFileName(f) != ArtifactStore.EntryFile))
        {
            var name = Path.GetFileName(f);
            // graph files are never rewritten: link them; provider caches can be updated at load: copy them,
            // so that an update never reaches the store entry
            if (name.StartsWith("model.opt.")) LinkOrCopy(f, Path.Combine(temp, name));
            else File.Copy(f, Path.Combine(temp, name));
        }
        var compiledFile = format switch
        {
            "ort" => OrtFile,
            "onnx" => OnnxFile,
            _ => File.Exists(Path.Combine(temp, EpContextFile)) ? EpContextFile : manifest.ModelFile,
        };
        (manifest with
        {
            Compiled = new ModelManifest.CompiledInfo(config.Target, format, compiledFile, key, OrtVersion, HardwareFingerprint.Hash, HardwareFingerprint.Description),
            Steps = [.. manifest.Steps, $"compile:{config.Target}"],
        }).Save(temp);
        output.Commit();
        return new CompileResult(key, hit, artifact!, outDir, format, originalMs, compiledMs, lookup == ArtifactStore.Lookup.Corrupt ? problem : null);
    }

    /// <summary>The local compile cache's key: the content address of the model files' hashes and <see cref="Settings"/>.</summary>
    public static string Key(IEnumerable<string> modelFiles, string target) =>
        ContentAddress.Of([KeyKind, .. modelFiles.Select(f => $"{Path.GetFileName(f)}={ModelManifest.Sha256File(f)}"), .. Settings(target)]);

    /// <summary>The kind and version of a compiled artifact's key.</summary>
    public const string KeyKind = "compile/2";

    /// <summary>What else a compiled graph depends on: the target, the ONNX Runtime version, the session options and the hardware.</summary>
    public static string[] Settings(string target) =>
        [$"target={target}", $"ort={OrtVersion}", $"options={SessionOptionsDescription}", $"hardware={HardwareFingerprint.Hash}"];

    const string SessionOptionsDescription = "level=all;prepacked=external;min_external=1024";

    /// <summary>Fails clearly when this build of ONNX Runtime cannot reach the target's execution provider.</summary>
    public static void RequireProvider(string target)
    {
        var needed = target switch { "cuda" => "CUDAExecutionProvider", "tensorrt" => "TensorrtExecutionProvider", _ => "CPUExecutionProvider" };
        var available = OrtEnv.Instance().GetAvailableProviders();
        if (!available.Contains(needed))
            throw new SioException($"--target {target} needs ONNX Runtime's {needed}, which is not available here (available: {string.Join(", ", available)}); " +
                "compile on a machine with the GPU package (Microsoft.ML.OnnxRuntime.Gpu.Linux, CUDA 13) and the GPU, or use --target cpu");
    }

    /// <summary>
    /// TensorRT's own compiled caches, kept in the artifact: the engine cache, the timing cache and
    /// the EP context model (an ONNX model that embeds the built engines, so a later load skips the
    /// build), all under <paramref name="folder"/>; fp16 where TensorRT finds it accurate.
    /// </summary>
    public static Dictionary<string, string> TensorRtOptions(string folder) => new()
    {
        ["trt_engine_cache_enable"] = "1",
        ["trt_engine_cache_path"] = folder,
        ["trt_timing_cache_enable"] = "1",
        ["trt_timing_cache_path"] = folder,
        ["trt_fp16_enable"] = "1",
        ["trt_dump_ep_context_model"] = "1",
        ["trt_ep_context_file_path"] = folder,
    };

    /// <summary>Session settings that write (compile) or read (load) an EP context model in <paramref name="folder"/>.</summary>
    public static Dictionary<string, string> EpContextConfig(string folder, bool write) => write
        ? new() { ["ep.context_enable"] = "1", ["ep.context_file_path"] = Path.Combine(folder, EpContextFile), ["ep.context_embed_mode"] = "0" }
        : new();

    public const string EpContextFile = "model.ctx.onnx";

    /// <param name="folder">Where the provider keeps its compiled caches (the artifact being built, or the model folder at load).</param>
    static void AppendProvider(SessionOptions so, string target, string? folder = null, bool writeContext = false)
    {
        switch (target)
        {
            case "cuda":
                so.AppendExecutionProvider_CUDA();
                break;
            case "tensorrt":
                using (var trt = new OrtTensorRTProviderOptions())
                {
                    if (folder is not null) trt.UpdateOptions(TensorRtOptions(folder));
                    so.AppendExecutionProvider_Tensorrt(trt);
                }
                if (folder is not null) foreach (var (k, v) in EpContextConfig(folder, writeContext)) so.AddSessionConfigEntry(k, v);
                so.AppendExecutionProvider_CUDA(); // what TensorRT does not take
                break;
        }
    }

    /// <summary>Writes both candidate forms, keeps the one that loads faster, and returns it with the load times.</summary>
    static (string Format, double OriginalMs, double CompiledMs) Build(string modelPath, string work, string target)
    {
        if (target != "cpu")
        {
            // A graph with provider-compiled nodes cannot be saved as ONNX or ORT; what a GPU target keeps is the
            // provider's own output: TensorRT's engine and timing caches and the EP context model, written into the work folder.
            var sw = Stopwatch.StartNew();
            using (var so = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR })
            {
                AppendProvider(so, target, work, writeContext: true);
                using var _ = new InferenceSession(modelPath, so);
            }
            return ("provider-cache", sw.Elapsed.TotalMilliseconds, 0);
        }
        using (var so = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR, OptimizedModelFilePath = Path.Combine(work, OnnxFile) })
        {
            AppendProvider(so, target, work, writeContext: true); // GPU targets leave their engine and timing caches and context model in the artifact
            so.AddSessionConfigEntry("session.optimized_model_external_initializers_file_name", OnnxFile + ".data");
            so.AddSessionConfigEntry("session.optimized_model_external_initializers_min_size_in_bytes", "1024");
            so.AddSessionConfigEntry("session.save_external_prepacked_constant_initializers", "1");
            using var _ = new InferenceSession(modelPath, so);
        }
        using (var so = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR, OptimizedModelFilePath = Path.Combine(work, OrtFile) })
        {
            AppendProvider(so, target);
            so.AddSessionConfigEntry("session.save_model_format", "ORT");
            using var _ = new InferenceSession(modelPath, so);
        }
        double Time(Func<InferenceSession> load)
        {
            var times = new List<double>();
            for (int i = 0; i < 3; i++)
            {
                var sw = Stopwatch.StartNew();
                using var s = load();
                times.Add(sw.Elapsed.TotalMilliseconds);
            }
            return times.Order().ElementAt(1);
        }
        double original = Time(() => new InferenceSession(modelPath, LoadOptions(null, target)));
        double onnx = Time(() => new InferenceSession(Path.Combine(work, OnnxFile), LoadOptions("onnx", target)));
        double ort = Time(() => new InferenceSession(Path.Combine(work, OrtFile), LoadOptions("ort", target)));
        if (ort < onnx)
        {
            foreach (var f in Directory.GetFiles(work, OnnxFile + "*")) File.Delete(f);
            return ("ort", original, ort);
        }
        File.Delete(Path.Combine(work, OrtFile));
        return ("onnx", original, onnx);
    }

    /// <summary>Session options to load a graph: the original (full optimization at load) or a compiled form (none left to do).</summary>
    public static SessionOptions LoadOptions(string? compiledFormat, string target, int threads = 0, bool allowSpinning = false, string? folder = null, bool stopSpinningAfterRun = false)
    {
        var so = new SessionOptions
        {
            GraphOptimizationLevel = compiledFormat is null or "provider-cache" ? GraphOptimizationLevel.ORT_ENABLE_ALL : GraphOptimizationLevel.ORT_DISABLE_ALL,
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
        };
        if (threads > 0) so.IntraOpNumThreads = threads;
        so.AddSessionConfigEntry("session.prepack.enable_parallel", "1"); // prepacking dominates session creation; spread it over the cores
        if (!allowSpinning) so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        else if (stopSpinningAfterRun) so.AddSessionConfigEntry("session.force_spinning_stop", "1");
        if (compiledFormat == "ort") so.AddSessionConfigEntry("session.load_model_format", "ORT");
        AppendProvider(so, target, folder);
        return so;
    }

    /// <summary>A hard link where the file system allows one (no copy of large weights), else a copy.</summary>
    static void LinkOrCopy(string from, string to)
    {
        if (!OperatingSystem.IsWindows())
        {
            try { if (link(from, to) == 0) return; }
            catch (DllNotFoundException) { }
            catch (EntryPointNotFoundException) { }
        }
        File.Copy(from, to);
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    static extern int link(string oldpath, string newpath);
}
