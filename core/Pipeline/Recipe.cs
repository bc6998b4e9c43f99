namespace Sio.Pipeline;

/// <summary>One technique of a recipe, with its parameters.</summary>
public sealed record Technique(string Kind, string Spec)
{
    public const string Quantize = "quantize", Compile = "compile", Speculative = "speculative";
    /// <summary>Quantize: awq or rtn.</summary>
    public string? Method { get; init; }
    public int GroupSize { get; init; } = 32;
    /// <summary>Compile: cpu, cuda or tensorrt.</summary>
    public string Target { get; init; } = "cpu";
    /// <summary>Speculative: the drafter (ngram, self-int4, datastore, draft:PATH).</summary>
    public string Drafter { get; init; } = "none";
}

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
    /// The one place that turns a quantize technique into its pass config. MatMulNBits' accuracy level is 4 (int8
    /// activations, fastest on CPU) unless the model will be served with speculative decoding, which takes 0: ONNX
    /// Runtime's level-4 kernel changes its numerical path with the number of rows on x64, so a verification pass could
    /// pick a token that plain decoding would not. Level 4 comes with an int8 classifier, level 0 with a float32 one (at
    /// level 0 ONNX Runtime's 8-bit kernel decoded the 110M model at 10 tok/s against 101 with a float32 classifier).
    /// </summary>
    public static Quantization.QuantizationConfig QuantizationFor(Technique t, bool servedSpeculatively) => new()
    {
        Method = t.Method ?? throw new ArgumentException($"{t.Spec} is not a quantization", nameof(t)), GroupSize = t.GroupSize,
        AccuracyLevel = servedSpeculatively ? 0 : 4, LmHead = servedSpeculatively ? "fp32" : "int8",
    };

    public static IReadOnlyList<Technique> Parse(string recipe)
    {
        if (string.IsNullOrWhiteSpace(recipe)) throw new SioException($"the recipe is empty; give {Help}");
        var list = new List<Technique>();
        foreach (var raw in recipe.Split(',', StringSplitOptions.TrimEntries))
        {
            var t = ParseOne(raw);
            if (list.Any(x => x.Kind == t.Kind)) throw new SioException($"recipe: '{raw}' repeats a {t.Kind} step; give at most one of each");
            if (t.Kind == Technique.Quantize && list.Any(x => x.Kind == Technique.Compile))
                throw new SioException($"recipe: '{raw}' comes after compile; quantize first, so that the compiled graph is the quantized one");
            if (t.Kind != Technique.Speculative && list.Any(x => x.Kind == Technique.Speculative))
                throw new SioException($"recipe: '{raw}' comes after speculative; speculative decoding is the last step (it is a serving setting of the final model)");
            list.Add(t);
        }
        if (list.FirstOrDefault(t => t.Kind == Technique.Speculative) is { Drafter: "self-int4" } && list.Any(t => t.Kind == Technique.Quantize))
            throw new SioException("recipe: speculative:self-int4 drafts with an int4 copy of a float32 target, but this recipe already quantizes the target; use speculative:ngram or speculative:datastore with a quantized target");
        return list;
    }

    static Technique ParseOne(string raw)
    {
        var parts = raw.Split(':', 2);
        string name = parts[0], arg = parts.Length > 1 ? parts[1] : "";
        switch (name)
        {
            case "awq-int4" or "rtn-int4":
                int g = 32;
                if (arg != "" && !(arg.StartsWith('g') && int.TryParse(arg[1..], out g) && g is 32 or 64 or 128))
                    throw new SioException($"recipe: '{raw}' has a bad group size; write {name}:g32, :g64 or :g128");
                return new Technique(Technique.Quantize, raw) { Method = name[..3], GroupSize = g };
            case "compile":
                var target = arg == "" ? "cpu" : arg;
                if (target is not ("cpu" or "cuda" or "tensorrt")) throw new SioException($"recipe: '{raw}' names an unknown target; use compile:cpu, compile:cuda or compile:tensorrt");
                return new Technique(Technique.Compile, raw) { Target = target };
            case "speculative":
                if (arg is not ("ngram" or "self-int4" or "datastore") && !(arg.StartsWith("draft:") && arg.Length > 6))
                    throw new SioException($"recipe: '{raw}' names an unknown drafter; use speculative:ngram, speculative:self-int4, speculative:datastore or speculative:draft:PATH");
                return new Technique(Technique.Speculative, raw) { Drafter = arg };
            default:
                throw new SioException($"recipe: unknown technique '{raw}'; give {Help}");
        }
    }
}
