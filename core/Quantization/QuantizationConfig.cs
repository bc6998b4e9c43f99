namespace Sio.Quantization;

/// <summary>
/// Settings of an int4 weight quantization pass (Olive-style: one record, each knob with its trade-off).
/// </summary>
public sealed record QuantizationConfig
{
    /// <summary>awq: activation-aware scales and clipping searched on calibration data (better quality, needs data);
    /// rtn: round-to-nearest per block (no data, fastest to produce).</summary>
    public string Method { get; init; } = "awq";
    /// <summary>AWQ scale: s = mean|x|^α / mean|w|^(1−α) (AutoAWQ's duo scaling, default) or the paper's s = mean|x|^α.
    /// Measured on stories260K g32: perplexity 3.578 with duo scaling, 3.608 without (fp32 3.371, RTN 3.652).</summary>
    public bool DuoScaling { get; init; } = true;
    /// <summary>Weight bits: 4 (int4 MatMulNBits, the default) or 8 (the same kernels with 8-bit codes: about half the
    /// size of fp32's saving, near-lossless; fast only at accuracy level 4).</summary>
    public int Bits { get; init; } = 4;
    /// <summary>Input elements sharing one scale: smaller groups are more accurate and slightly larger (32: +12.5 % over
    /// 4 bits per weight for scales; 128: +3 %), and on CPU slower: ONNX Runtime's int4 kernel (accuracy level 4) decoded
    /// the 110M model 1.35x faster at 128 than at 32 (and 1.11x at 64) in one run.</summary>
    public int GroupSize { get; init; } = 32;
    /// <summary>Symmetric blocks need no zero point (smaller, a little less accurate for skewed blocks).</summary>
    public bool Symmetric { get; init; }
    /// <summary>Round every block scale to a bfloat16 value (a relative change under 0.2 %, next to 4-bit rounding's
    /// 1/15 of the range). The graph still stores float32, so ONNX Runtime runs the same numbers; sio's native decoder
    /// then keeps 2-byte scales: 4.5 bits per weight at blocks of 32, llama.cpp Q4_0's size, instead of 5.</summary>
    public bool Bf16Scales { get; init; }
    /// <summary>0: activations stay float32 inside MatMulNBits (most exact); 4: activations are quantized to int8 in the
    /// kernel (error about 1e-2, several times faster on CPU).</summary>
    public int AccuracyLevel { get; init; }
    /// <summary>Node or weight names to keep in float32; '*' matches any run of characters.</summary>
    public IReadOnlyList<string> Exclude { get; init; } = [];
    /// <summary>With 4 bits: node or weight names quantized to 8 bits instead (mixed precision, e.g. one decoder layer's
    /// linears, "/model/layers.3/*"); linears that share an input take one precision. '*' matches any run of characters.</summary>
    public IReadOnlyList<string> EightBit { get; init; } = [];
    /// <summary>The classifier (lm_head): fp32 (default: it dominates quality at small sizes), int8 or int4.</summary>
    public string LmHead { get; init; } = "fp32";
    /// <summary>The token embedding: fp32 (default), int8 or int4 (GatherBlockQuantized).</summary>
    public string Embedding { get; init; } = "fp32";
    /// <summary>Calibration file (AWQ): the user's own data, any shape sio reads.</summary>
    public string? Calibration { get; init; }
    /// <summary>Calibration records used.</summary>
    public int CalibrationSamples { get; init; } = 64;
    /// <summary>Tokens per calibration record (cut).</summary>
    public int CalibrationSeqLen { get; init; } = 256;
    /// <summary>Activation rows kept per linear input for the output-error searches.</summary>
    public int SearchRows { get; init; } = 2048;

    /// <summary>Rounding inside each block (AWQ): compensate (default: the columns are rounded in order and each rounding
    /// error is spread over the weights not yet rounded, along the inverse Hessian of the layer's output error, as GPTQ does)
    /// or nearest (the AWQ paper's). Measured on stories260K g32 (both with bias correction): perplexity increase over fp32 +0.152 against +0.179.</summary>
    public string Rounding { get; init; } = "compensate";
    /// <summary>AWQ: give each quantized linear the bias (W − Q)·mean(x) that removes its mean output shift on the calibration
    /// data. Measured on stories260K g32 (with compensating rounding): +0.152 with, +0.156 without.</summary>
    public bool BiasCorrection { get; init; } = true;

    /// <summary>AWQ: after rounding, descend on each layer's output error: move single codes up or down a step and refit
    /// each block's scale by least squares while the error falls (<see cref="RoundingRefinement"/>). Measured on stories260K
    /// g32 (with compensating rounding and bias correction): +0.136 with, +0.152 without; about 13 % more time.</summary>
    public bool Refine { get; init; } = true;

    /// <summary>Apply AWQ's scales (and their folds) but keep every weight float32: a check that folding is exact.</summary>
    internal bool FoldOnly { get; init; }

    /// <summary>Write linears that share an input (q/k/v, gate/up) as one MatMulNBits and split its output (default); off
    /// only to check that fusing changes nothing.</summary>
    internal bool FuseSharedInputs { get; init; } = true;

    public const int MinCalibrationTokens = 64;

    public QuantizationConfig Validate()
    {
        if (Method is not ("awq" or "rtn")) throw new SioException($"--method must be awq or rtn, got {Method}");
        if (Bits is not (4 or 8)) throw new SioException($"--bits must be 4 or 8, got {Bits}");
        if (Bits == 8 && EightBit.Count > 0) throw new SioException("--eight-bit names linears to raise from 4 to 8 bits; with --bits 8 every linear already has 8");
        if (Bits == 8 && LmHead == "int4") throw new SioException("--lm-head int4 with --bits 8 would make the classifier the least precise layer; use int8 or fp32");
        if (GroupSize is not (16 or 32 or 64 or 128 or 256)) throw new SioException($"--group-size must be 16, 32, 64, 128 or 256, got {GroupSize}");
        if (AccuracyLevel is not (0 or 1 or 2 or 3 or 4)) throw new SioException($"--accuracy-level must be 0..4, got {AccuracyLevel}");
        if (LmHead is not ("fp32" or "int8" or "int4")) throw new SioException($"--lm-head must be fp32, int8 or int4, got {LmHead}");
        if (Embedding is not ("fp32" or "int8" or "int4")) throw new SioException($"--embedding must be fp32, int8 or int4, got {Embedding}");
        if (Method == "awq" && string.IsNullOrEmpty(Calibration)) throw new SioException("--method awq needs --calibration FILE (your own data: JSONL or text)");
        if (CalibrationSamples < 1) throw new SioException($"--calibration-samples must be ≥ 1, got {CalibrationSamples}");
        if (CalibrationSeqLen < 2) throw new SioException($"--calibration-seq-len must be ≥ 2, got {CalibrationSeqLen}");
        if (Rounding is not ("nearest" or "compensate")) throw new SioException($"--rounding must be nearest or compensate, got {Rounding}");
        if (SearchRows < 1) throw new SioException($"--search-rows must be ≥ 1, got {SearchRows}");
        return this;
    }

    /// <summary>What the pass's output depends on, as text for a content key: every setting but the calibration file's path (the caller keys the data itself).</summary>
    public string ContentKey() => System.Text.Json.JsonSerializer.Serialize(this with { Calibration = null });

    public bool IsExcluded(string name) => Exclude.Any(p => Glob(p, name));

    /// <summary>The bits a linear is quantized to: 8 where <see cref="EightBit"/> names it, else <see cref="Bits"/>.</summary>
    public int BitsOf(LinearLayer l) => EightBit.Any(p => Glob(p, l.Name) || Glob(p, l.Weight)) ? 8 : Bits;

    static bool Glob(string pattern, string text)
    {
        if (!pattern.Contains('*')) return text.Contains(pattern, StringComparison.Ordinal);
        var regex = "^" + string.Join(".*", pattern.Split('*').Select(System.Text.RegularExpressions.Regex.Escape)) + "$";
        return System.Text.RegularExpressions.Regex.IsMatch(text, regex);
    }
}
