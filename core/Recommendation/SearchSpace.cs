using Sio.Quantization;
using Sio.Speculative;

namespace Sio.Recommendation;

/// <summary>
/// What a recommendation may build and measure. Each plain candidate is a quantization (or none) × classifier precision,
/// served at accuracy level 4 (int8 activations, fastest on CPU) by an engine; speculative candidates add a drafter to a
/// float model or to a quantized one built at accuracy level 0 with a float32 classifier (the only setting in which
/// verification is exact, see <see cref="Pipeline.Recipe.Parse"/>). Every candidate is measured at each concurrency limit.
/// </summary>
public sealed record SearchSpace
{
    /// <summary>none, METHOD-intBITS[:gGROUP] with METHOD rtn or awq, BITS 4 or 8, GROUP 32, 64 or 128, or METHOD-mixed[:gGROUP]:
    /// 4 or 8 bits (or float) per decoder layer, the smallest mix within the quality budget's KL divergence (<see cref="MixedPrecision"/>).</summary>
    public string[] Quantization { get; init; } = ["none", "rtn-int8:g32", "rtn-int4:g32", "rtn-int4:g128", "awq-int4:g32", "awq-int4:g128"];
    /// <summary>Classifier (lm_head) precision of the plain quantized candidates: int8 or fp32.</summary>
    public string[] Classifiers { get; init; } = ["int8"];
    /// <summary>none, ngram, datastore (self-distilled from the calibration half), or draft:PATH (a draft model of the same vocabulary).</summary>
    public string[] Drafters { get; init; } = ["none", "ngram", "datastore"];
    /// <summary>Draft lengths of the speculative candidates: auto (adaptive) or a fixed number of tokens.</summary>
    public string[] DraftLengths { get; init; } = ["auto"];
    /// <summary>onnx (ONNX Runtime) or native (sio's own decoder for single-token steps).</summary>
    public string[] Engines { get; init; } = ["onnx", "native"];
    /// <summary>Concurrency limits (requests decoded at once, `sio serve --max-concurrent`).</summary>
    public int[] Concurrency { get; init; } = [1, 2, 4, 8];
    /// <summary>Candidates taken from the batch-1 screen to the load stage (the Pareto front of quality and speed first).</summary>
    public int Finalists { get; init; } = 4;

    public IEnumerable<(string, string)> Problems()
    {
        foreach (var q in Quantization)
        {
            string? problem = null;
            try { ParseQuantization(q); } catch (SioException e) { problem = e.Message; }
            if (problem is not null) yield return ("quantization", problem);
        }
        foreach (var c in Classifiers.Where(c => c is not ("int8" or "fp32"))) yield return ("classifiers", $"'{c}' is not int8 or fp32");
        foreach (var d in Drafters)
        {
            string? problem = null;
            try { if (DrafterSpec.Parse(d, "drafter") is { Kind: DrafterKind.SelfInt4 }) problem = "self-int4 is not searched (the quantized candidates cover it); use none, ngram, datastore or draft:PATH"; }
            catch (SioException e) { problem = e.Message; }
            if (problem is not null) yield return ("drafters", problem);
        }
        foreach (var l in DraftLengths)
        {
            string? problem = null;
            try { SpeculativeOptions.ParseDraftTokens(l); } catch (SioException e) { problem = e.Message.Replace("--draft-tokens", "a draft length"); }
            if (problem is not null) yield return ("draftLengths", problem);
        }
        foreach (var e in Engines.Where(e => e is not ("onnx" or "native"))) yield return ("engines", $"'{e}' is not onnx or native");
        if (Concurrency.Any(c => c is < 1 or > 256)) yield return ("concurrency", "must list limits from 1 to 256");
        if (Finalists is < 1 or > 64) yield return ("finalists", "must be from 1 to 64");
        if (Quantization.Length == 0 || Engines.Length == 0 || Concurrency.Length == 0 || Drafters.Length == 0 || DraftLengths.Length == 0
            || (Classifiers.Length == 0 && Quantization.Any(q => q != "none")))
            yield return ("", "the search space is empty: every dimension (quantization, classifiers, drafters, draftLengths, engines, concurrency) needs at least one value");
    }

    /// <summary>"none" → null; "awq-int4:g128" → its config (accuracy level and classifier are set per candidate);
    /// "rtn-mixed:g32" → 4 bits, with 8 (or float) per decoder layer where the quality budget's KL divergence needs it.</summary>
    public static QuantizationConfig? ParseQuantization(string spec)
    {
        if (spec == "none") return null;
        var parts = spec.Split(':', 2);
        var head = parts[0].EndsWith("-mixed") ? [parts[0][..^6], "4"] : parts[0].Split("-int");
        if (head.Length != 2 || head[0] is not ("rtn" or "awq") || !int.TryParse(head[1], out var bits) || bits is not (4 or 8))
            throw new SioException($"'{spec}' is not a quantization; write none, METHOD-intBITS[:gGROUP] or METHOD-mixed[:gGROUP], e.g. rtn-int8, awq-int4:g128, rtn-mixed");
        int group = 32;
        if (parts.Length == 2 && !(parts[1].StartsWith('g') && int.TryParse(parts[1][1..], out group) && group is 32 or 64 or 128))
            throw new SioException($"'{spec}' has a bad group size; write :g32, :g64 or :g128");
        return new QuantizationConfig { Method = head[0], Bits = bits, GroupSize = group };
    }
}

/// <summary>
/// One configuration a recommendation can deploy: a model (the float baseline or a quantization of it, with its
/// classifier and accuracy level), a drafter and draft length, and an engine. Its <see cref="Name"/> is stable.
/// </summary>
public sealed record Candidate(string Quantization, string Classifier, int AccuracyLevel, string Drafter, string DraftLength, string Engine)
{
    public bool Speculative => Drafter != "none";

    /// <summary>A mixed-precision model: built by a search within the request's KL divergence budget.</summary>
    public bool Mixed => Quantization.Contains("-mixed");

    public string ModelName => Quantization == "none" ? "fp32" : $"{Quantization}/head-{Classifier}/a{AccuracyLevel}";

    public string Name => $"{ModelName}{(Speculative ? $"+{DrafterName}{(DraftLength == "auto" ? "" : $"/k{DraftLength}")}" : "")}@{Engine}";

    string DrafterName => Drafter.StartsWith("draft:") ? "draft" : Drafter;

    /// <summary>The quantization pass's config for this candidate's model (null for the float baseline).</summary>
    public QuantizationConfig? Config() => SearchSpace.ParseQuantization(Quantization) is { } q
        ? q with { AccuracyLevel = AccuracyLevel, LmHead = Classifier, Method = q.Method } : null;

    public int? DraftTokens => SpeculativeOptions.ParseDraftTokens(DraftLength);

    /// <summary>The plain candidates: every quantization × classifier (float models have one) × engine, cheapest to build first.</summary>
    public static List<Candidate> Plain(SearchSpace space) =>
        [.. space.Quantization.OrderBy(q => q == "none" ? 0 : q.StartsWith("rtn") ? 1 : 2)
            .SelectMany(q => q == "none" ? ["fp32"] : space.Classifiers, (q, c) => (q, c))
            .SelectMany(_ => space.Engines, (x, e) => new Candidate(x.q, x.q == "none" ? "fp32" : x.c, x.q == "none" ? 0 : 4, "none", "auto", e))];

    /// <summary>The speculative candidates on a model: each drafter × draft length, on the ONNX Runtime engine (verification
    /// is a multi-token pass, which runs in ONNX Runtime on either engine). A quantized model is rebuilt at accuracy level 0
    /// with a float32 classifier, so that the drafter's output stays exactly the target's.</summary>
    public static IEnumerable<Candidate> WithDrafters(SearchSpace space, string quantization) =>
        space.Drafters.Where(d => d != "none").SelectMany(_ => space.DraftLengths, (d, k) => new Candidate(quantization, "fp32", 0, d, k, "onnx"));
}
