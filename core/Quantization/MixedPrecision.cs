using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Sio.Artifacts;
using Sio.Evaluation;
using Sio.Generation;
using Sio.Models;

namespace Sio.Quantization;

/// <summary>One decoder layer's part in a mixed-precision search: the KL divergence of the all-8-bit model with only this
/// layer at 4 bits, how much that adds to the all-8-bit model's, and the precision chosen (4, 8, or 32 for float).</summary>
public sealed record MixedPrecisionLayer(int Layer, double? KldWithLayerAt4, double? Sensitivity, int Bits);

/// <summary>A mixed-precision search's outcome, written as mixed-precision.json in the chosen model's folder.</summary>
public sealed record MixedPrecisionResult(double MaxKld, double KldAll4, double KldAll8, double Kld, long BytesAll4, long BytesAll8, long Bytes,
    IReadOnlyList<MixedPrecisionLayer> Layers, IReadOnlyList<string> EightBit, IReadOnlyList<string> Float, int Builds, double Seconds, string Evaluation, long Tokens);

/// <summary>
/// Quality-budgeted mixed precision: each decoder layer's linears get 4 bits, 8 bits or (for the few that need it) stay
/// float, so that the model's mean KL divergence from the float model on the evaluation data stays within a budget at the
/// smallest size. Measures the all-4-bit and all-8-bit models; when all-4 is within budget it is the answer. Otherwise it
/// measures each layer's sensitivity (the all-8-bit model with only that layer at 4 bits), lowers the least sensitive
/// layers to 4 bits while the sum of their sensitivities stays within the budget, then checks the model built that way
/// and raises the last-lowered layer back while it is over. When even all-8 is over the budget, the most sensitive
/// layers stay float one by one until it is within. Every candidate is a real quantized folder measured with
/// <see cref="Divergence"/>; about L + 3 builds for L layers. The float model is the reference; the evaluation data should not be the calibration data.
/// </summary>
public static class MixedPrecision
{
    public const string FileName = "mixed-precision.json";

    public static MixedPrecisionResult Search(string inputDir, string outDir, QuantizationConfig config, Dataset evaluation, double maxKld,
        ModelOptions? options = null, IProgress<string>? progress = null)
    {
        if (!(maxKld >= 0)) throw new SioException($"--mixed-kld must be a KL divergence ≥ 0, got {maxKld}");
        if (config.Bits != 4 || config.EightBit.Count > 0) throw new SioException("a mixed-precision search starts from 4 bits and chooses the 8-bit layers itself; leave out --bits 8 and --eight-bit");
        config.Validate();
        options ??= new ModelOptions();
        var clock = Stopwatch.StartNew();
        using var output = OutputFolder.Begin(outDir, [inputDir, config.Calibration], ModelImporter.CheckDestination);
        var scratch = output.Temp + ".search";
        Directory.CreateDirectory(scratch);
        try
        {
            using var reference = Model.Load(inputDir, options);
            var layers = Layers(QuantizationPlan.Open(inputDir, config).Graph);
            int builds = 0;
            long tokens = 0;
            (string Dir, double Kld, long Bytes) Build(string what, QuantizationConfig c)
            {
                var dir = Path.Combine(scratch, $"b{++builds}");
                progress?.Report($"mixed precision: {what}");
                Quantizer.Run(inputDir, dir, c);
                using var m = Model.Load(dir, options);
                var d = Divergence.Compare(m, reference, evaluation, maxTokensPerRecord: 256);
                tokens = d.Tokens;
                return (dir, d.MeanKld, Directory.GetFiles(dir, "model.onnx*").Sum(f => new FileInfo(f).Length));
            }
            var all4 = Build("all 4-bit", config);
            var all8 = Build("all 8-bit", config with { EightBit = ["*"] });
            var sensitivity = new Dictionary<int, double>();
            var chosen = all4;
            List<int> eight = [], fp = [];
            if (all4.Kld > maxKld)
            {
                foreach (var i in layers)
                    sensitivity[i] = Build($"layer {i} at 4 bits ({sensitivity.Count + 1}/{layers.Count})", config with { EightBit = [.. layers.Where(j => j != i).Select(Pattern)] }).Kld;
                var order = layers.OrderBy(i => sensitivity[i]).ToList();
                if (all8.Kld <= maxKld)
                {
                    var four = new List<int>();
                    double predicted = all8.Kld;
                    foreach (var i in order)
                    {
                        double add = Math.Max(0, sensitivity[i] - all8.Kld);
                        if (predicted + add > maxKld) break;
                        predicted += add;
                        four.Add(i);
                    }
                    while (true)
                    {
                        eight = layers.Except(four).ToList();
                        chosen = four.Count == 0 ? all8 : Build($"{four.Count} layers at 4 bits, {eight.Count} at 8", config with { EightBit = [.. eight.Select(Pattern)] });
                        if (chosen.Kld <= maxKld || four.Count == 0) break;
                        four.RemoveAt(four.Count - 1); // the sum underestimated: the last-lowered layer goes back to 8 bits
                    }
                }
                else
                {
                    eight = [.. layers];
                    chosen = all8;
                    foreach (var i in order.AsEnumerable().Reverse())
                    {
                        if (chosen.Kld <= maxKld) break;
                        fp.Add(i);
                        eight.Remove(i);
                        chosen = Build($"{fp.Count} layers float, {eight.Count} at 8 bits", config with { EightBit = ["*"], Exclude = [.. config.Exclude, .. fp.Select(Pattern)] });
                    }
                }
            }
            var result = new MixedPrecisionResult(maxKld, R(all4.Kld), R(all8.Kld), R(chosen.Kld), all4.Bytes, all8.Bytes, chosen.Bytes,
                layers.Select(i => new MixedPrecisionLayer(i, sensitivity.TryGetValue(i, out var k) ? R(k) : null, sensitivity.TryGetValue(i, out var k2) ? R(Math.Max(0, k2 - all8.Kld)) : null,
                    fp.Contains(i) ? 32 : eight.Contains(i) ? 8 : 4)).ToList(),
                eight.Select(Pattern).ToList(), fp.Select(Pattern).ToList(), builds, Math.Round(clock.Elapsed.TotalSeconds, 1), evaluation.Path, tokens);
            foreach (var f in Directory.GetFiles(chosen.Dir)) File.Move(f, Path.Combine(output.Temp, Path.GetFileName(f)));
            File.WriteAllText(Path.Combine(output.Temp, FileName), JsonSerializer.Serialize(result, ModelManifest.Json));
            output.Commit();
            return result;
        }
        finally { try { Directory.Delete(scratch, true); } catch (IOException) { } }
    }

    static double R(double x) => Math.Round(x, 6);

    /// <summary>The linears of decoder layer <paramref name="i"/> (node names like /model/layers.3/attn.q_proj/MatMul).</summary>
    public static string Pattern(int i) => $"*layers.{i}/*";

    static List<int> Layers(LinearGraph graph)
    {
        var found = graph.Linears.Select(l => Regex.Match(l.Name, @"layers\.(\d+)/")).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value)).Distinct().Order().ToList();
        return found.Count > 0 ? found : throw new SioException("no decoder layers (…/layers.N/…) found among the linears; a mixed-precision search chooses per layer");
    }
}
