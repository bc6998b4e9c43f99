using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Onnx;
using Sio.Models;
using Sio.Onnx;
using Sio.Tokenization;

namespace Sio.Quantization;

/// <summary>
/// What the quantize pass does to a model, decided before anything is written: the linears it rewrites (checked
/// first, so bad input fails before any work), AWQ's calibration and per-group input scales, and where each scale
/// folds (consumer rows ×s; the producer ÷s, into a norm weight, a producer's columns or a new Mul in front).
/// </summary>
sealed class QuantizationPlan
{
    readonly Dictionary<string, TensorProto> _initializers;

    QuantizationPlan(string inputDir, ModelManifest manifest, ModelProto model, LinearGraph graph, Tokenizer tokenizer, QuantizationConfig config)
    {
        (InputDir, Manifest, Model, Graph, Tokenizer, Config) = (inputDir, manifest, model, graph, tokenizer, config);
        _initializers = model.Graph.Initializer.ToDictionary(t => t.Name);
        // the token embedding: the table of the Gather on input_ids
        Embedding = model.Graph.Node.FirstOrDefault(n => n.OpType == "Gather" && n.Input.Count == 2 && n.Input[1] == "input_ids" && _initializers.ContainsKey(n.Input[0]))?.Input[0];
    }

    public string InputDir { get; }
    public string ModelPath => Path.Combine(InputDir, Manifest.ModelFile);
    public ModelManifest Manifest { get; }
    public ModelProto Model { get; }
    public LinearGraph Graph { get; }
    public Tokenizer Tokenizer { get; }
    public QuantizationConfig Config { get; }
    /// <summary>The token embedding's table (the Gather on input_ids), if the graph has one.</summary>
    public string? Embedding { get; }
    public Calibrator.Result? Calibration { get; private set; }
    /// <summary>AWQ's scale for each group of linears, by their shared input.</summary>
    public Dictionary<string, AwqSearch.ScaleChoice> Choices { get; } = new();
    /// <summary>Consumer weights whose rows are multiplied by a scale.</summary>
    public Dictionary<string, float[]> RowScale { get; } = new();
    /// <summary>Producer weights whose columns are divided by a scale.</summary>
    public Dictionary<string, float[]> ColumnDivide { get; } = new();
    /// <summary>Norm weights divided by a scale.</summary>
    public Dictionary<string, float[]> NormDivide { get; } = new();
    /// <summary>Inputs that get a Mul by 1/s in front of their consumers (no producer to fold into).</summary>
    public Dictionary<string, float[]> InsertMul { get; } = new();
    readonly Dictionary<string, LinearGroup> _groupOf = new();

    /// <summary>Reads a float32 folder's graph and checks that the pass can run on it.</summary>
    public static QuantizationPlan Open(string inputDir, QuantizationConfig config)
    {
        var manifest = ModelManifest.Load(inputDir);
        if (manifest.Dtype != "float32") throw SioException.InFile(inputDir, $"the model is already {manifest.Dtype}; quantize a float32 model");
        if (manifest.Compiled is not null) throw SioException.InFile(inputDir, "this folder is compiled; quantize the original and compile the result");
        var modelPath = Path.Combine(inputDir, manifest.ModelFile);
        var model = OnnxModelFile.Read(modelPath);
        var graph = new LinearGraph(model.Graph, config);
        if (graph.Linears.Count == 0)
            throw SioException.InFile(modelPath, "no quantizable MatMul: none has a constant float32 weight as its B input (after --exclude)");
        foreach (var l in graph.Linears.Where(l => l.K < config.GroupSize))
            throw SioException.InFile(modelPath, $"group size {config.GroupSize} is larger than K = {l.K} of {l.Name}: no block of it would be whole");
        var c = manifest.Config;
        var tokenizer = TokenizerLoader.LoadFile(Path.Combine(inputDir, manifest.Tokenizer.File), c.VocabSize, c.BosTokenId, c.EosTokenId);
        var plan = new QuantizationPlan(inputDir, manifest, model, graph, tokenizer, config);
        var embedding = plan.Embedding;
        if (config.Embedding != "fp32" && embedding is null) throw SioException.InFile(modelPath, "--embedding: no Gather of a constant table on input_ids found");
        if (embedding is not null && config.Embedding != "fp32" && model.Graph.Node.Count(n => n.Input.Contains(embedding)) != 1)
            throw SioException.InFile(modelPath, $"--embedding: the table {embedding} is shared with another node; quantize it with the classifier instead");
        return plan;
    }

    /// <summary>AWQ: runs the float model on the calibration data, searches each group's input scale and decides where it folds.</summary>
    public void Calibrate(BlockQuantizer q, IProgress<string>? progress)
    {
        if (Config.Method == "awq")
        {
            var calibration = Calibration = Calibrator.Run(InputDir, Model, Tokenizer, Graph.Groups, Config, Manifest.Config.ContextLength, progress);
            int done = 0;
            Parallel.ForEach(Graph.Groups, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, group =>
            {
                var weights = group.Layers.Select(l => (LoadNK(l.Weight), l.N)).ToList();
                var choice = AwqSearch.SearchScales(weights, calibration.Stats[group.Input], q, Config.DuoScaling);
                lock (Choices) { Choices[group.Input] = choice; progress?.Report($"scale search {++done}/{Graph.Groups.Count}"); }
            });
        }
        foreach (var group in Graph.Groups) PlaceScale(group);
    }

    void PlaceScale(LinearGroup group)
    {
        foreach (var l in group.Layers) _groupOf[l.Weight] = group;
        if (!Choices.TryGetValue(group.Input, out var choice) || choice.Alpha == 0) return;
        foreach (var l in group.Layers) RowScale[l.Weight] = choice.Scale;
        switch (group.Fold)
        {
            case Fold.NormWeight n: NormDivide[n.Initializer] = choice.Scale; break;
            case Fold.ProducerColumns p: ColumnDivide[p.Weight] = choice.Scale; break;
            default: InsertMul[group.Input] = choice.Scale.Select(v => 1f / v).ToArray(); break;
        }
    }

    /// <summary>A stored (K, N) weight as (N, K) rows.</summary>
    public float[] LoadNK(string weight)
    {
        var t = _initializers[weight];
        var kn = MemoryMarshal.Cast<byte, float>(OnnxModelFile.ReadBytes(t, InputDir)).ToArray();
        return DecoderGraph.Transpose(kn, (int)t.Dims[0], (int)t.Dims[1]);
    }

    /// <summary>A linear's (N, K) weight with its scales applied: what the rounding quantizes.</summary>
    public float[] FinalNK(LinearLayer l)
    {
        var w = LoadNK(l.Weight);
        if (RowScale.TryGetValue(l.Weight, out var s))
            for (int r = 0; r < l.N; r++) TensorPrimitives.Multiply(w.AsSpan(r * l.K, l.K), s, w.AsSpan(r * l.K, l.K));
        if (ColumnDivide.TryGetValue(l.Weight, out var d))
            for (int r = 0; r < l.N; r++) TensorPrimitives.Divide(w.AsSpan(r * l.K, l.K), d[r], w.AsSpan(r * l.K, l.K));
        return w;
    }

    /// <summary>The mean input row over all calibration tokens, as the scaled weight sees it.</summary>
    public float[]? InputMean(LinearLayer l)
    {
        if (Calibration is null) return null;
        var mean = Calibration.Stats[l.Input].Mean();
        if (RowScale.TryGetValue(l.Weight, out var s)) TensorPrimitives.Divide(mean, s, mean);
        return mean;
    }

    /// <summary>The calibration input rows of a linear, as the scaled weight sees them.</summary>
    public List<float[]>? InputRows(LinearLayer l)
    {
        if (Calibration is null) return null;
        var rows = Calibration.Stats[l.Input].Rows;
        if (!RowScale.TryGetValue(l.Weight, out var s)) return rows;
        return rows.Select(x => { var y = new float[x.Length]; TensorPrimitives.Divide(x, s, y); return y; }).ToList();
    }

    /// <summary>Where a linear's scale went, for the report: none, norm:NAME, producer:NAME or mul.</summary>
    public string FoldName(LinearLayer l) => Choices.GetValueOrDefault(l.Input) is not { Alpha: not 0 } ? "none" : _groupOf[l.Weight].Fold switch
    {
        Fold.NormWeight n => $"norm:{n.Initializer}",
        Fold.ProducerColumns p => $"producer:{p.Weight}",
        _ => "mul",
    };
}
