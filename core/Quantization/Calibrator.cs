using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using Sio.Evaluation;
using Sio.Tokenization;

namespace Sio.Quantization;

/// <summary>What calibration saw at one linear input: per-channel mean |x| and a sample of rows.</summary>
public sealed class ActivationStats(int k, int maxRows)
{
    public int K { get; } = k;
    public double[] SumAbs { get; } = new double[k];
    public double[] Sum { get; } = new double[k];
    public long Count { get; private set; }
    public List<float[]> Rows { get; } = new();
    public int MaxRows { get; } = maxRows;

    public float[] MeanAbs() => SumAbs.Select(s => (float)(s / Math.Max(1, Count))).ToArray();
    public float[] Mean() => Sum.Select(s => (float)(s / Math.Max(1, Count))).ToArray();

    internal void Add(ReadOnlySpan<float> row, bool keep)
    {
        for (int i = 0; i < K; i++) { SumAbs[i] += MathF.Abs(row[i]); Sum[i] += row[i]; }
        Count++;
        if (keep && Rows.Count < MaxRows) Rows.Add(row.ToArray());
    }
}

/// <summary>
/// Runs the float32 model over the user's calibration data with every quantized linear's input
/// exposed as an extra graph output, and collects <see cref="ActivationStats"/>.
/// </summary>
public static class Calibrator
{
    public sealed record Result(IReadOnlyDictionary<string, ActivationStats> Stats, int Samples, long Tokens, string DatasetSha256);

    public static Result Run(string modelDir, ModelProto model, Tokenizer tokenizer, IReadOnlyList<LinearGroup> groups,
        QuantizationConfig config, int contextLength, IProgress<string>? progress = null)
    {
        var dataset = DatasetReader.Read(config.Calibration!);
        var samples = new List<int[]>();
        foreach (var r in dataset.Records)
        {
            if (samples.Count >= config.CalibrationSamples) break;
            var text = r.IsPromptResponse ? r.Prompt + r.Response : r.Text!;
            var ids = tokenizer.Encode(text);
            if (ids.Count < 2) continue;
            samples.Add(ids.Take(Math.Min(config.CalibrationSeqLen, contextLength)).ToArray());
        }
        long total = samples.Sum(s => (long)s.Length);
        if (total < QuantizationConfig.MinCalibrationTokens)
            throw SioException.InFile(config.Calibration!, $"calibration set too short: {total} tokens in {samples.Count} records, AWQ needs at least {QuantizationConfig.MinCalibrationTokens}");

        // A copy of the graph with the linear inputs as outputs, beside a link to the weights.
        var probe = model.Clone();
        var existing = probe.Graph.Output.Select(o => o.Name).ToHashSet();
        foreach (var g in groups.Where(g => !existing.Contains(g.Input)))
            probe.Graph.Output.Add(new ValueInfoProto
            {
                Name = g.Input,
                Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float } },
            });
        // Loaded from bytes, with the external weights resolved in the model folder itself.
        using var so = new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_BASIC };
        so.AddSessionConfigEntry("session.model_external_initializers_file_folder_path", Path.GetFullPath(modelDir));
        using var session = new InferenceSession(probe.ToByteArray(), so);
        {
            var stats = groups.ToDictionary(g => g.Input, g => new ActivationStats(g.K, config.SearchRows));
            long stride = Math.Max(1, (total + config.SearchRows - 1) / config.SearchRows);
            long seen = 0;
            var names = groups.Select(g => g.Input).ToArray();
            for (int s = 0; s < samples.Count; s++)
            {
                progress?.Report($"calibration {s + 1}/{samples.Count}");
                var inputs = session.InputMetadata.Select(kv => InputFor(kv.Key, kv.Value, samples[s])).ToList();
                using var outputs = session.Run(inputs, names);
                int len = samples[s].Length;
                for (int o = 0; o < names.Length; o++)
                {
                    var values = outputs[o].AsTensor<float>().ToArray();
                    var st = stats[names[o]];
                    for (int t = 0; t < len; t++)
                        st.Add(values.AsSpan(t * st.K, st.K), (seen + t) % stride == 0);
                }
                seen += len;
            }
            return new Result(stats, samples.Count, total, dataset.Sha256);
        }
    }

    static NamedOnnxValue InputFor(string name, NodeMetadata meta, int[] ids)
    {
        int n = ids.Length;
        var dims = meta.Dimensions;
        return name switch
        {
            "input_ids" => NamedOnnxValue.CreateFromTensor(name, new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<long>(ids.Select(i => (long)i).ToArray(), [1, n])),
            "attention_mask" => NamedOnnxValue.CreateFromTensor(name, new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<long>(Enumerable.Repeat(1L, n).ToArray(), [1, n])),
            "position_ids" => NamedOnnxValue.CreateFromTensor(name, new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<long>(Enumerable.Range(0, n).Select(i => (long)i).ToArray(), [1, n])),
            _ when dims.Length == 4 => NamedOnnxValue.CreateFromTensor(name, new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>([1, dims[1], 0, dims[3]])),
            _ => throw new SioException($"calibration cannot feed graph input {name}: sio feeds input_ids, attention_mask, position_ids and past key/values"),
        };
    }
}
