using System.Diagnostics;
using System.Text.Json;
using Sio.Artifacts;
using Sio.Models;
using Sio.Onnx;

namespace Sio.Quantization;

/// <summary>
/// The quantize pass: rewrites a model folder's linears as int4 MatMulNBits (RTN or AWQ), streaming one weight at a
/// time into a new folder built beside the destination and renamed into place. Plan (<see cref="QuantizationPlan"/>:
/// checks, calibration, scales and folds) → rounding (<see cref="LinearRounding"/>) inside the graph rewrite
/// (<see cref="GraphRewrite"/>) → the manifest and <see cref="QuantizationReport"/>.
/// </summary>
public static class Quantizer
{
    public static QuantizationReport Run(string inputDir, string outDir, QuantizationConfig config, IProgress<string>? progress = null)
    {
        config.Validate();
        var clock = Stopwatch.StartNew();
        var plan = QuantizationPlan.Open(inputDir, config);
        using var output = OutputFolder.Begin(outDir, [inputDir, config.Calibration], ModelImporter.CheckDestination);
        var q = new BlockQuantizer(config.Bits, config.GroupSize, config.Symmetric);
        plan.Calibrate(q, progress);
        var rewrite = WriteGraph(plan, q, output.Temp, progress);
        CopyTokenizer(inputDir, output.Temp);
        var tag = $"{config.Method}-int{config.Bits}-g{config.GroupSize}{(config.Symmetric ? "-sym" : "")}-acc{config.AccuracyLevel}";
        var manifest = plan.Manifest;
        (manifest with
        {
            Dtype = config.FoldOnly ? manifest.Dtype : $"int{config.Bits}",
            ModelFile = DecoderGraph.ModelFile,
            Steps = [.. manifest.Steps, $"quantize:{tag}"],
            CreatedUtc = DateTime.UtcNow,
        }).Save(output.Temp);
        var report = Report(config, plan, rewrite, inputDir, output.Temp, clock.Elapsed.TotalSeconds);
        File.WriteAllText(Path.Combine(output.Temp, QuantizationReport.FileName), JsonSerializer.Serialize(report, ModelManifest.Json));
        output.Commit();
        return report;
    }

    static GraphRewrite WriteGraph(QuantizationPlan plan, BlockQuantizer q, string dir, IProgress<string>? progress)
    {
        using var g = new GraphBuilder(Path.Combine(dir, DecoderGraph.DataFile));
        var rewrite = new GraphRewrite(plan, q, g, progress);
        rewrite.Write(dir);
        return rewrite;
    }

    static void CopyTokenizer(string inputDir, string dir)
    {
        foreach (var f in Directory.GetFiles(inputDir))
        {
            var name = Path.GetFileName(f);
            if (name.StartsWith("tokenizer") || name is "special_tokens_map.json" or GenAiConfig.FileName)
                File.Copy(f, Path.Combine(dir, name));
        }
    }

    static QuantizationReport Report(QuantizationConfig config, QuantizationPlan plan, GraphRewrite rewrite, string inputDir, string outputDir, double seconds)
    {
        bool awq = config.Method == "awq";
        var calibration = plan.Calibration;
        return new QuantizationReport
        {
            Method = config.Method, Bits = config.Bits, GroupSize = config.GroupSize, Symmetric = config.Symmetric, AccuracyLevel = config.AccuracyLevel,
            Bf16Scales = config.Bf16Scales,
            Rounding = awq ? config.Rounding : null, Refined = awq && config.Refine, BiasCorrection = awq && config.BiasCorrection,
            Calibration = calibration is null ? null : new(Path.GetFullPath(config.Calibration!), calibration.DatasetSha256, calibration.Samples, calibration.Tokens, config.SearchRows),
            Layers = rewrite.Layers,
            Sizes = new(rewrite.Fp32Bytes, rewrite.QuantizedBytes, rewrite.Fp32Bytes > 0 ? (double)rewrite.QuantizedBytes / rewrite.Fp32Bytes : 0, FolderModelBytes(inputDir), FolderModelBytes(outputDir)),
            LmHead = rewrite.LmHead,
            Embedding = rewrite.Embedding,
            SecondsTaken = seconds,
        };
    }

    static long FolderModelBytes(string dir) => Directory.GetFiles(dir, "model.onnx*").Sum(f => new FileInfo(f).Length);
}
