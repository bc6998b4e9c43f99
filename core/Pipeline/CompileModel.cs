using Microsoft.DurableTask;
using Sio.Artifacts;
using Sio.Compilation;

namespace Sio.Pipeline;

/// <summary>The compile step: ahead-of-time graph optimization for the target, keyed by the runtime version and the hardware it was made on.</summary>
public sealed class CompileModel(ArtifactRepository artifacts) : TaskActivity<CompileInput, ModelArtifact>
{
    public override Task<ModelArtifact> RunAsync(TaskActivityContext context, CompileInput input) => PipelineTraces.Step("compile", context, input.Name, () => RunAsync(input));

    public async Task<ModelArtifact> RunAsync(CompileInput input)
    {
        Compiler.RequireProvider(input.Target);
        var key = ContentAddress.Of([Compiler.KeyKind, input.Model.Key, .. Compiler.Settings(input.Target)]);
        return await artifacts.GetOrBuildModelAsync(key, input.Name, async outDir =>
        {
            var source = await artifacts.MaterializeAsync(input.Model.Key);
            Compiler.Run(source, outDir, new CompileConfig { Target = input.Target, CacheDir = Path.Combine(artifacts.Options.WorkDir, "compile-cache") });
        });
    }
}
