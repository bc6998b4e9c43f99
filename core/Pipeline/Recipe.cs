using Sio.Quantization;
using Sio.Speculative;

namespace Sio.Pipeline;

/// <summary>
/// A recipe: techniques applied in order, e.g. "awq-int4:g64,compile,speculative:ngram". At most one of
/// each kind; quantization comes before compilation (the compiled graph is the quantized one), and
/// speculative decoding is a serving setting on the final model. Every combination stacks.
/// </summary>
public static class Recipe
{
    /// <summary>The recipe a run takes when none is given (the API, `sio optimize`, `sio up` and uploads alike).</summary>
    public const string Default = "awq-int4,speculative:datastore";

    public const string Help = "comma-separated, in order: awq-int4[:gN] or rtn-int4[:gN] (N = 32, 64 or 128), compile[:cpu|cuda|tensorrt], speculative:ngram|self-int4|datastore|draft:PATH (datastore: retrieval drafting from a store self-distilled from the calibration half of your data; draft: a model folder or an imported model, artifacts/models/KEY)";

    /// <summary>
    /// Parses a recipe into its passes, checks their order, and decides the policy that depends on the whole recipe (in
    /// this one place): MatMulNBits' accuracy level is 4 (int8 activations, fastest on CPU) unless the model will be
    /// served with speculative decoding, which takes 0: ONNX Runtime's level-4 kernel changes its numerical path with
    /// the number of rows on x64, so a verification pass could pick a token that plain decoding would not. Level 4
    /// comes with an int8 classifier, level 0 with a float32 one (at level 0 ONNX Runtime's 8-bit kernel decoded the
    /// 110M model at 10 tok/s against 101 with a float32 classifier).
    /// </summary>
    public static IReadOnlyList<PassConfig> Parse(string recipe)
    {
        if (string.IsNullOrWhiteSpace(recipe)) throw new SioException($"the recipe is empty; give {Help}");
        var list = new List<PassConfig>();
        foreach (var raw in recipe.Split(',', StringSplitOptions.TrimEntries))
        {
            var pass = ParseOne(raw);
            if (list.Any(x => x.GetType() == pass.GetType())) throw new SioException($"recipe: '{raw}' repeats a {KindOf(pass)} step; give at most one of each");
            if (pass is QuantizePass && list.Any(x => x is CompilePass))
                throw new SioException($"recipe: '{raw}' comes after compile; quantize first, so that the compiled graph is the quantized one");
            if (pass is not SpeculativePass && list.Any(x => x is SpeculativePass))
                throw new SioException($"recipe: '{raw}' comes after speculative; speculative decoding is the last step (it is a serving setting of the final model)");
            list.Add(pass);
        }
        var speculative = list.OfType<SpeculativePass>().FirstOrDefault();
        if (speculative?.Drafter.Kind == DrafterKind.SelfInt4 && list.Any(t => t is QuantizePass))
            throw new SioException("recipe: speculative:self-int4 drafts with an int4 copy of a float32 target, but this recipe already quantizes the target; use speculative:ngram or speculative:datastore with a quantized target");
        return [.. list.Select(p => p is QuantizePass q ? q with { Config = q.Config with { AccuracyLevel = speculative is null ? 4 : 0, LmHead = speculative is null ? "int8" : "fp32" } } : p)];
    }

    static string KindOf(PassConfig p) => p switch { QuantizePass => "quantize", CompilePass => "compile", _ => "speculative" };

    static PassConfig ParseOne(string raw)
    {
        var parts = raw.Split(':', 2);
        string name = parts[0], arg = parts.Length > 1 ? parts[1] : "";
        switch (name)
        {
            case "awq-int4" or "rtn-int4":
                int g = 32;
                if (arg != "" && !(arg.StartsWith('g') && int.TryParse(arg[1..], out g) && g is 32 or 64 or 128))
                    throw new SioException($"recipe: '{raw}' has a bad group size; write {name}:g32, :g64 or :g128");
                return new QuantizePass(raw, new QuantizationConfig { Method = name[..3], GroupSize = g });
            case "compile":
                var target = arg == "" ? "cpu" : arg;
                if (target is not ("cpu" or "cuda" or "tensorrt")) throw new SioException($"recipe: '{raw}' names an unknown target; use compile:cpu, compile:cuda or compile:tensorrt");
                return new CompilePass(raw, target);
            case "speculative":
                const string forms = "speculative:ngram, speculative:self-int4, speculative:datastore or speculative:draft:PATH";
                DrafterSpec drafter;
                try { drafter = DrafterSpec.Parse(arg, $"recipe: '{raw}'"); }
                catch (SioException) { throw new SioException($"recipe: '{raw}' names an unknown drafter; use {forms}"); }
                if (drafter.Kind == DrafterKind.None || (drafter.Kind == DrafterKind.Datastore && drafter.Path is not null))
                    throw new SioException($"recipe: '{raw}' names an unknown drafter; use {forms}");
                return new SpeculativePass(raw, drafter);
            default:
                throw new SioException($"recipe: unknown technique '{raw}'; give {Help}");
        }
    }
}
