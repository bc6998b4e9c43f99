using System.CommandLine;
using Sio.Compilation;

namespace Sio.Cli;

public static class CompileCommand
{
    public static Command Create()
    {
        var dir = new Argument<string>("model") { Description = "A sio model folder." };
        var target = new Option<string>("--target") { Description = "Execution provider to optimize for: cpu, cuda or tensorrt (GPU targets need the GPU build and a GPU).", DefaultValueFactory = _ => new CompileConfig().Target };
        var output = new Option<string?>("--out") { Description = "The compiled model folder (default: MODEL-TARGET beside the model)." };
        var cache = new Option<string?>("--cache") { Description = "The artifact store of compiled graphs (default: $SIO_HOME/artifacts or ~/.sio/artifacts)." };
        var force = new Option<bool>("--force") { Description = "Compile again even when the store has this key." };
        var json = new Option<bool>("--json") { Description = "Print cache_hit, artifact, key, format and load times as JSON." };
        var cmd = new Command("compile", "Ahead-of-time graph optimization for an execution provider (for TensorRT also its engine and timing caches), cached by content in the artifact store.")
        {
            dir, target, output, cache, force, json,
        };
        cmd.SetAction(p =>
        {
            var result = Compiler.Run(p.GetValue(dir)!, p.GetValue(output), new CompileConfig { Target = p.GetValue(target)!, CacheDir = p.GetValue(cache), Force = p.GetValue(force) }, Cli.Progress("compile"));
            Cli.EndProgress();
            if (result.DiscardedEntry is not null) p.InvocationConfiguration.Error.WriteLine($"warning: the cached entry {result.Key} was corrupt ({result.DiscardedEntry}); discarded and rebuilt");
            var o = p.InvocationConfiguration.Output;
            if (p.GetValue(json))
                Cli.WriteJson(o, new
                {
                    cache_hit = result.CacheHit,
                    artifact = result.Artifact,
                    key = result.Key,
                    output = result.OutputDir,
                    format = result.Format,
                    original_load_ms = result.OriginalLoadMs,
                    compiled_load_ms = result.CompiledLoadMs,
                    discarded_corrupt_entry = result.DiscardedEntry,
                    hardware = HardwareFingerprint.Description,
                    onnxruntime = Compiler.OrtVersion,
                });
            else
                o.WriteLine($"{(result.CacheHit ? "cache hit" : "compiled")}: {result.Format} graph, session load {result.OriginalLoadMs:F0} ms → {result.CompiledLoadMs:F0} ms; artifact {result.Artifact} → {result.OutputDir}");
            return 0;
        });
        return cmd;
    }
}
