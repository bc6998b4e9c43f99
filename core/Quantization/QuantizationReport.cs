namespace Sio.Quantization;

/// <summary><c>quantization-report.json</c>: what was chosen per layer and what it cost.</summary>
public sealed record QuantizationReport
{
    public const string FileName = "quantization-report.json";

    public required string Method { get; init; }
    public required int Bits { get; init; }
    public required int GroupSize { get; init; }
    public required bool Symmetric { get; init; }
    /// <summary>Block scales rounded to bfloat16 values (2 bytes each in sio's native decoder).</summary>
    public bool Bf16Scales { get; init; }
    public required int AccuracyLevel { get; init; }
    /// <summary>AWQ's rounding inside a block (compensate or nearest), whether it was refined by descent and whether linears
    /// got a bias correction; null and false for RTN.</summary>
    public string? Rounding { get; init; }
    public bool Refined { get; init; }
    public bool BiasCorrection { get; init; }
    public CalibrationInfo? Calibration { get; init; }
    public required List<LayerReport> Layers { get; init; }
    public required SizeReport Sizes { get; init; }
    public required TensorReport LmHead { get; init; }
    public required TensorReport Embedding { get; init; }
    public double SecondsTaken { get; init; }

    public sealed record CalibrationInfo(string File, string Sha256, int Samples, long Tokens, int SearchRows);
    public sealed record LayerReport(string Name, string Weight, int K, int N, string Input, string Fold, float Alpha, float ClipMean,
        double WeightError, double? OutputError, double? RtnOutputError);
    /// <summary>Bytes of the quantized layers before (fp32) and after (packed + scales + zero points), and of the whole model.</summary>
    public sealed record SizeReport(long QuantizedLayersFp32Bytes, long QuantizedLayersBytes, double QuantizedLayersRatio, long ModelBytesBefore, long ModelBytesAfter);
    public sealed record TensorReport(string Precision, long BytesBefore, long BytesAfter);
}
