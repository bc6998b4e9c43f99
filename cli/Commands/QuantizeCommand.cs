using System.CommandLine;
using Sio.Quantization;

namespace Sio.Cli;

public static class QuantizeCommand
{
    /// <summary>Every option's default is the pass's own (<see cref="QuantizationConfig"/>): defaults exist once.</summary>
    static readonly QuantizationConfig Defaults = new();

    public static Command Create()
    {
        var dir = new Argument<string>("model") { Description = "A float32 sio model folder." };
        var method = new Option<string>("--method") { Description = "awq (activation-aware, calibrated on your data) or rtn (round-to-nearest).", DefaultValueFactory = _ => Defaults.Method };
        var bits = new Option<int>("--bits") { Description = "Weight bits: 4, or 8 (near-lossless, half the saving; fast only with --accuracy-level 4).", DefaultValueFactory = _ => Defaults.Bits };
        var group = new Option<int>("--group-size") { Description = "Input elements per scale: 32 (most accurate), 64 or 128 (smallest, and fastest on CPU: 1.35x 32's decode speed at --accuracy-level 4 on the 110M model).", DefaultValueFactory = _ => Defaults.GroupSize };
        var symmetric = new Option<bool>("--symmetric") { Description = "No zero points (smaller, a little less accurate)." };
        var bf16Scales = new Option<bool>("--bf16-scales") { Description = "Round block scales to bfloat16 values (under 0.2 % each): ONNX Runtime runs the same numbers, and --engine native keeps 2-byte scales (4.5 bits per weight at blocks of 32, like llama.cpp's Q4_0)." };
        var calibration = new Option<string?>("--calibration") { Description = "Calibration data for AWQ: JSONL ({text}, prompt/response, OpenOrca, chat messages) or plain text." };
        var samples = new Option<int>("--calibration-samples") { Description = "Calibration records used.", DefaultValueFactory = _ => Defaults.CalibrationSamples };
        var seqLen = new Option<int>("--calibration-seq-len") { Description = "Tokens per calibration record.", DefaultValueFactory = _ => Defaults.CalibrationSeqLen };
        var searchRows = new Option<int>("--search-rows") { Description = "Activation rows per layer for AWQ's error searches (more: slower, steadier).", DefaultValueFactory = _ => Defaults.SearchRows };
        var duo = new Option<bool>("--duo-scaling") { Description = "AWQ scale s = mean|x|^α / mean|w|^(1−α) (AutoAWQ's default; 'false' for the paper's s = mean|x|^α).", DefaultValueFactory = _ => Defaults.DuoScaling };
        var rounding = new Option<string>("--rounding") { Description = "AWQ rounding inside a block: compensate (GPTQ-style: each rounding error spread over the weights not yet rounded, along the layer's inverse Hessian) or nearest (the AWQ paper's).", DefaultValueFactory = _ => Defaults.Rounding };
        var biasCorrection = new Option<bool>("--bias-correction") { Description = "AWQ: add the bias (W − Q)·mean(x) that removes each linear's mean output shift on the calibration data ('false' to leave MatMulNBits without bias).", DefaultValueFactory = _ => Defaults.BiasCorrection };
        var refine = new Option<bool>("--refine") { Description = "AWQ: after rounding, move single codes up or down and refit block scales while each layer's output error on the calibration data falls ('false' to skip).", DefaultValueFactory = _ => Defaults.Refine };
        var accuracy = new Option<int>("--accuracy-level") { Description = "0: float activations in the kernel (exact); 4: int8 activations (much faster on CPU, error ~1e-2).", DefaultValueFactory = _ => Defaults.AccuracyLevel };
        var exclude = new Option<string?>("--exclude") { Description = "Comma-separated node or weight names kept in float32 ('*' wildcards)." };
        var lmHead = new Option<string>("--lm-head") { Description = "Classifier precision: fp32, int8 or int4 (int8 is fast only with --accuracy-level 4: at level 0 ONNX Runtime's 8-bit kernel is several times slower than fp32).", DefaultValueFactory = _ => Defaults.LmHead };
        var embedding = new Option<string>("--embedding") { Description = "Token embedding precision: fp32, int8 or int4 (GatherBlockQuantized; saves memory, not decode time).", DefaultValueFactory = _ => Defaults.Embedding };
        var eightBit = new Option<string?>("--eight-bit") { Description = "With 4 bits: comma-separated node or weight names raised to 8 bits ('*' wildcards; e.g. '*layers.0/*' for decoder layer 0)." };
        var mixedKld = new Option<double?>("--mixed-kld") { Description = "Mixed precision: choose 4 or 8 bits (or float) per decoder layer so that the mean KL divergence from this float model on --eval stays within this budget (nats per token) at the smallest size; writes mixed-precision.json beside the model." };
        var eval = new Option<string?>("--eval") { Description = "With --mixed-kld: the data the KL divergence is measured on (JSONL or text; the first 8 records, up to 256 tokens each; not your calibration data)." };
        var output = new Option<string>("--out") { Description = "The quantized model folder to write.", Required = true };
        var json = new Option<bool>("--json") { Description = "Print the quantization report as JSON." };
        var cmd = new Command("quantize", "Int4 (or int8) weight quantization (AWQ or RTN) into ONNX Runtime MatMulNBits, with a quantization-report.json.")
        {
            dir, method, bits, group, symmetric, bf16Scales, calibration, samples, seqLen, searchRows, duo, rounding, refine, biasCorrection, accuracy, exclude, lmHead, embedding, eightBit, mixedKld, eval, output, json,
        };
        cmd.SetAction(p =>
        {
            var config = new QuantizationConfig
            {
                Method = p.GetValue(method)!, Bits = p.GetValue(bits), GroupSize = p.GetValue(group), Symmetric = p.GetValue(symmetric), Bf16Scales = p.GetValue(bf16Scales),
                Calibration = p.GetValue(calibration), CalibrationSamples = p.GetValue(samples), CalibrationSeqLen = p.GetValue(seqLen),
                SearchRows = p.GetValue(searchRows), DuoScaling = p.GetValue(duo), Rounding = p.GetValue(rounding)!, Refine = p.GetValue(refine),
                BiasCorrection = p.GetValue(biasCorrection), AccuracyLevel = p.GetValue(accuracy), LmHead = p.GetValue(lmHead)!, Embedding = p.GetValue(embedding)!,
                Exclude = (p.GetValue(exclude) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                EightBit = (p.GetValue(eightBit) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            };
            if (p.GetValue(mixedKld) is double budget) return Mixed(p, config, budget, p.GetValue(eval), p.GetValue(output)!, p.GetValue(json));
            if (p.GetValue(eval) is not null) throw new SioException("--eval is the data of a mixed-precision search; give --mixed-kld with it");
            var report = Quantizer.Run(p.GetValue(dir)!, p.GetValue(output)!, config, Cli.Progress("quantize"));
            Cli.EndProgress();
            var o = p.InvocationConfiguration.Output;
            if (p.GetValue(json)) Cli.WriteJson(o, report);
            else
                o.WriteLine($"{report.Method} int{report.Bits} g{report.GroupSize}: {report.Layers.Count} linears, {report.Sizes.QuantizedLayersFp32Bytes / 1e6:F2} MB → {report.Sizes.QuantizedLayersBytes / 1e6:F2} MB " +
                    $"({report.Sizes.QuantizedLayersRatio:P1}); model {report.Sizes.ModelBytesBefore / 1e6:F2} MB → {report.Sizes.ModelBytesAfter / 1e6:F2} MB; {report.SecondsTaken:F1} s → {Path.GetFullPath(p.GetValue(output)!)}");
            return 0;
        });
        return cmd;
    }

    static int Mixed(ParseResult p, QuantizationConfig config, double budget, string? eval, string output, bool json)
    {
        if (eval is null) throw new SioException("--mixed-kld needs --eval FILE: the data the KL divergence is measured on");
        var data = Evaluation.DatasetReader.Read(eval);
        data = data with { Records = data.Records.Take(8).ToList() };
        var r = MixedPrecision.Search(p.GetValue<string>("model")!, output, config, data, budget, progress: Cli.Progress("mixed precision"));
        Cli.EndProgress();
        var o = p.InvocationConfiguration.Output;
        if (json) { Cli.WriteJson(o, r); return 0; }
        o.WriteLine($"mixed precision within KLD {budget}: {r.Layers.Count(l => l.Bits == 4)} layers at 4 bits, {r.Layers.Count(l => l.Bits == 8)} at 8, {r.Layers.Count(l => l.Bits == 32)} float");
        o.WriteLine($"  all 4-bit: KLD {r.KldAll4:G3}, {r.BytesAll4 / 1e6:F2} MB; all 8-bit: KLD {r.KldAll8:G3}, {r.BytesAll8 / 1e6:F2} MB; chosen: KLD {r.Kld:G3}, {r.Bytes / 1e6:F2} MB ({r.Builds} builds, {r.Seconds:F0} s)");
        o.WriteLine($"  → {Path.GetFullPath(output)}");
        return 0;
    }
}
