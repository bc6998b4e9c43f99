using Microsoft.ML.OnnxRuntime;
using Sio.Models;
using Sio.Tokenization;

namespace Sio.Generation;

/// <summary>How to run a model: threads and execution provider.</summary>
public sealed record ModelOptions
{
    /// <summary>Intra-op threads; 0 chooses: one for small models (under 8 MB of weights, where keeping threads in step
    /// costs more than it saves), one per core otherwise.</summary>
    public int Threads { get; init; }
    /// <summary>Let idle ONNX Runtime threads spin for new work between the operators of a step instead of sleeping. On by
    /// default: int4 decoding runs many small operators per token, and waking sleeping threads for each cost a quarter of
    /// its speed (the 110M AWQ model on 2 cores: 159–184 tok/s without, 213–245 with; fp32 61–63 vs 65–72). When a draft
    /// model takes turns with the target on the same cores, spinning past the end of a run would steal the other's time,
    /// so both spin only within their runs (<see cref="StopSpinningAfterRun"/>, through <see cref="ForDrafter"/>).</summary>
    public bool AllowSpinning { get; init; } = true;

    /// <summary>Spinning threads stop the moment a run returns (ONNX Runtime's <c>session.force_spinning_stop</c>): they
    /// still spin between the operators of a step, but never into time another session (a draft model taking turns with
    /// the target on the same cores) needs. The ~110M fp32 model with its int4 self-draft, `sio generate`: 121–140 decode
    /// tok/s with spinning off in both sessions, 162–165 spinning within runs only, 82–114 with the target spinning on.</summary>
    public bool StopSpinningAfterRun { get; init; }

    /// <summary>These options for a target that will run with <paramref name="speculative"/>'s drafter: when the drafter is
    /// a model, spinning only within runs.</summary>
    public ModelOptions ForDrafter(Speculative.SpeculativeOptions speculative) => speculative.UsesDraftModel ? this with { StopSpinningAfterRun = true } : this;
    /// <summary>cpu, cuda or tensorrt.</summary>
    public string Provider { get; init; } = "cpu";
    /// <summary>What runs single-token decode steps: onnx (ONNX Runtime, like every other run) or native (sio's own C#
    /// decoder, <see cref="Native.NativeDecoder"/>, on the CPU; prompts and multi-token appends still run in ONNX Runtime,
    /// on the same cache).</summary>
    public string Engine { get; init; } = "onnx";
}

/// <summary>A loaded model folder: its manifest, an ONNX Runtime session and its tokenizer.</summary>
public sealed class Model : IDisposable
{
    public string Folder { get; }
    public ModelManifest Manifest { get; }
    public DecoderConfig Config => Manifest.Config;
    public Tokenizer Tokenizer { get; }
    internal InferenceSession Session { get; }
    /// <summary>sio's own decode step, when <see cref="ModelOptions.Engine"/> is native.</summary>
    internal Native.NativeDecoder? Native { get; private init; }
    /// <summary>What runs decode steps: "onnx", or "native" with how its linears are stored.</summary>
    public string Engine => Native is { } n ? $"native ({n.Description}, {n.WeightBytes / 1e6:F1} MB per token)" : "onnx";
    /// <summary>Why the model was loaded otherwise than asked (a compiled graph made for another machine), or null.</summary>
    public string? Warning { get; private init; }
    /// <summary>The graph file the session runs (the compiled one when it applies).</summary>
    public string GraphFile { get; private init; } = "";
    /// <summary>How chat messages become this model's prompt (its tokenizer_config.json template, or the plain one); read on first use.</summary>
    public Serving.ChatTemplate ChatTemplate => _chatTemplate ??= Serving.ChatTemplate.ForModel(Folder);
    Serving.ChatTemplate? _chatTemplate;
    /// <summary>Ids that end generation: the manifest's end-of-text and end-of-turn tokens (EOS, and BOS for llama2.c models).</summary>
    public IReadOnlyList<int> StopTokens { get; }

    Model(string folder, ModelManifest manifest, Tokenizer tokenizer, InferenceSession session)
    {
        Folder = folder;
        Manifest = manifest;
        Tokenizer = tokenizer;
        Session = session;
        StopTokens = manifest.StopTokens.Count > 0 ? manifest.StopTokens
            : manifest.StopOnBos ? [Config.EosTokenId, Config.BosTokenId] : [Config.EosTokenId];
    }

    public static Model Load(string folder, ModelOptions? options = null)
    {
        options ??= new ModelOptions();
        var manifest = ModelManifest.Load(folder);
        var c = manifest.Config;
        var tokenizer = TokenizerLoader.LoadFile(Path.Combine(folder, manifest.Tokenizer.File), c.VocabSize, c.BosTokenId, c.EosTokenId);
        var modelPath = Path.Combine(folder, manifest.ModelFile);
        if (!File.Exists(modelPath)) throw SioException.InFile(modelPath, "model file not found");
        int threads = options.Threads > 0 ? options.Threads : AutoThreads(modelPath);
        if (options.Provider is not ("cpu" or "cuda" or "tensorrt")) throw new SioException($"unknown execution provider {options.Provider} (cpu, cuda or tensorrt)");
        if (options.Provider != "cpu") Compilation.Compiler.RequireProvider(options.Provider);
        if (options.Engine is not ("onnx" or "native")) throw new SioException($"unknown engine {options.Engine} (onnx or native)");
        if (options.Engine == "native" && options.Provider != "cpu") throw new SioException($"the native engine runs on the CPU; it cannot be combined with {options.Provider}");

        // a compiled graph is used when it was made for this runtime, hardware and provider; otherwise the original, with a warning
        string? warning = null, compiledFormat = null;
        var graphPath = modelPath;
        if (manifest.Compiled is { } compiled)
        {
            var compiledPath = Path.Combine(folder, compiled.ModelFile);
            string? mismatch =
                !File.Exists(compiledPath) ? $"{compiled.ModelFile} is missing" :
                compiled.OrtVersion != Compilation.Compiler.OrtVersion ? $"it was compiled with ONNX Runtime {compiled.OrtVersion}, this is {Compilation.Compiler.OrtVersion}" :
                compiled.Hardware != Compilation.HardwareFingerprint.Hash ? $"it was compiled on {compiled.HardwareDescription}, this is {Compilation.HardwareFingerprint.Description}" :
                (compiled.Target == "cpu") != (options.Provider == "cpu") ? $"it was compiled for {compiled.Target}, the session runs on {options.Provider}" : null;
            if (mismatch is null) { graphPath = compiledPath; compiledFormat = compiled.Format; }
            else warning = $"{folder}: not using the compiled graph ({mismatch}); loading the original model";
        }
        // TensorRT finds its engine and timing caches in the model folder, where `sio compile --target tensorrt` put them
        // beside the native decoder ONNX Runtime only prefills: its threads must not spin on into the decode steps' cores
        bool ortSpins = options.AllowSpinning && options.Engine != "native";
        var so = Compilation.Compiler.LoadOptions(compiledFormat, options.Provider, threads, ortSpins, folder, options.StopSpinningAfterRun);
        Sio.Native.NativeDecoder? native = null;
        try
        {
            native = options.Engine == "native" ? Sio.Native.NativeDecoder.Load(folder, manifest, threads, options.AllowSpinning) : null;
            return new Model(folder, manifest, tokenizer, new InferenceSession(graphPath, so)) { Warning = warning, GraphFile = Path.GetFileName(graphPath), Native = native };
        }
        catch (OnnxRuntimeException e)
        {
            native?.Dispose();
            throw SioException.InFile(graphPath, $"ONNX Runtime cannot load the model: {e.Message}");
        }
        catch
        {
            native?.Dispose();
            throw;
        }
        finally
        {
            so.Dispose();
        }
    }

    static int AutoThreads(string modelPath)
    {
        long bytes = Directory.GetFiles(Path.GetDirectoryName(modelPath)!, Path.GetFileName(modelPath) + "*").Sum(f => new FileInfo(f).Length);
        return bytes < 8 << 20 ? 1 : Environment.ProcessorCount;
    }

    public void Dispose()
    {
        Session.Dispose();
        Native?.Dispose();
    }
}
