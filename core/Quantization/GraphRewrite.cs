using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Onnx;
using Sio.Models;
using Sio.Onnx;
using static Sio.Onnx.GraphBuilder;
using DT = Onnx.TensorProto.Types.DataType;

namespace Sio.Quantization;

/// <summary>
/// Writes the quantized graph, one initializer at a time as it streams past: each planned linear rounded and packed as
/// MatMulNBits weights (linears sharing an input become one kernel whose output is split back), the embedding as
/// GatherBlockQuantized where asked, folded scales applied to the float weights that take them; then the nodes, with
/// MatMul → MatMulNBits and a Mul in front of groups whose scale could not be folded. Tallies what each tensor cost.
/// </summary>
sealed class GraphRewrite
{
    readonly QuantizationPlan _plan;
    readonly QuantizationConfig _config;
    readonly BlockQuantizer _q;
    readonly LinearRounding _rounding;
    readonly IProgress<string>? _progress;
    readonly Dictionary<string, LinearLayer> _quantized, _replaced;
    readonly LinearLayer? _lmHead8;
    readonly Dictionary<string, LinearGroup> _fusedOf;
    readonly Dictionary<LinearGroup, Dictionary<string, RoundedLinear>> _stashed = new();
    readonly HashSet<string> _biased = new();
    readonly GraphBuilder _g;

    public List<QuantizationReport.LayerReport> Layers { get; } = new();
    public long Fp32Bytes { get; private set; }
    public long QuantizedBytes { get; private set; }
    public QuantizationReport.TensorReport LmHead { get; private set; } = new("fp32", 0, 0);
    public QuantizationReport.TensorReport Embedding { get; private set; } = new("fp32", 0, 0);

    /// <summary>A rewrite into <paramref name="g"/>, which the caller owns (its data file is the new folder's).</summary>
    public GraphRewrite(QuantizationPlan plan, BlockQuantizer q, GraphBuilder g, IProgress<string>? progress)
    {
        (_plan, _config, _q, _g, _progress) = (plan, plan.Config, q, g, progress);
        _rounding = new LinearRounding(_config, plan.Graph);
        _quantized = plan.Graph.Linears.ToDictionary(l => l.Weight);
        _lmHead8 = _config.LmHead == "int8" && plan.Graph.LmHead is not null ? plan.Graph.LmHead : null;
        _replaced = new(_quantized);
        if (_lmHead8 is not null) _replaced[_lmHead8.Weight] = _lmHead8;
        _fusedOf = (_config.FuseSharedInputs ? FusedGroups() : []).SelectMany(gr => gr.Layers.Select(l => (l.Weight, gr))).ToDictionary(x => x.Weight, x => x.gr);
    }

    /// <summary>Writes the graph and saves it as <paramref name="dir"/>/model.onnx beside the builder's data file.</summary>
    public void Write(string dir)
    {
        var g = _g;
        var og = _plan.Model.Graph;
        g.Graph.Input.AddRange(og.Input);
        g.Graph.Output.AddRange(og.Output);
        foreach (var t in og.Initializer) WriteInitializer(t);
        if (_stashed.Count > 0)
            throw new InvalidOperationException($"fused linears never all came past: {string.Join(", ", _stashed.Keys.Select(FusedName))}");
        WriteNodes(og);
        g.Save(Path.Combine(dir, DecoderGraph.ModelFile), _plan.Model.MetadataProps.Select(m => (m.Key, m.Value)));
    }

    int _written; // linears written so far: progress counts linears, not every initializer, so it ends at N/N

    void WriteInitializer(TensorProto t)
    {
        if (_config.FoldOnly && _quantized.TryGetValue(t.Name, out var folded)) WriteFolded(folded);
        else if (_replaced.TryGetValue(t.Name, out var l))
        {
            _progress?.Report($"quantizing {++_written}/{_replaced.Count}: {l.Name}");
            WriteLinear(l);
        }
        else if (t.Name == _plan.Embedding && _config.Embedding != "fp32") WriteEmbedding(t);
        else WriteFloat(t);
    }

    /// <summary>The fold-only mode (a test of the scale folding): the scaled weight written back in float32.</summary>
    void WriteFolded(LinearLayer l)
    {
        var w = _plan.FinalNK(l);
        _g.Initializer<float>(l.Weight, DecoderGraph.Transpose(w, l.N, l.K), DT.Float, l.K, l.N);
        var choice = _plan.Choices.GetValueOrDefault(l.Input);
        Layers.Add(new(l.Name, l.Weight, l.K, l.N, l.Input, _plan.FoldName(l), choice?.Alpha ?? 0, 1f, 0, null, null));
    }

    void WriteLinear(LinearLayer l)
    {
        bool head8 = l == _lmHead8;
        var bq = head8 || _config.BitsOf(l) != _q.Bits ? new BlockQuantizer(head8 ? 8 : _config.BitsOf(l), _config.GroupSize, _config.Symmetric) : _q;
        var w = _plan.FinalNK(l);
        var rows = head8 ? null : _plan.InputRows(l);
        var rounded = _rounding.Round(l, w, rows, bq, () => _plan.InputMean(l)!);
        if (_fusedOf.TryGetValue(l.Weight, out var fused)) StashFused(fused, l, rounded);
        else WritePacked(l.Weight, rounded);
        long before = (long)l.N * l.K * 4;
        if (head8) { LmHead = new("int8", before, rounded.Packed.Bytes); return; } // the int8 classifier needs no error report
        Fp32Bytes += before;
        QuantizedBytes += rounded.Packed.Bytes;
        if (l == _plan.Graph.LmHead) LmHead = new($"int{_config.BitsOf(l)}", before, rounded.Packed.Bytes);
        Layers.Add(Report(l, w, rows, rounded));
    }

    /// <summary>A member of a fused group waits for the others; the group's last linear writes them as one.</summary>
    void StashFused(LinearGroup fused, LinearLayer l, RoundedLinear rounded)
    {
        var parts = _stashed.TryGetValue(fused, out var st) ? st : _stashed[fused] = [];
        parts[l.Weight] = rounded;
        if (parts.Count < fused.Layers.Count) return;
        WritePacked(FusedName(fused), Concatenate(fused.Layers.Select(f => parts[f.Weight]).ToList()));
        _stashed.Remove(fused);
    }

    void WritePacked(string name, RoundedLinear r)
    {
        var packed = r.Packed;
        _g.Initializer(name + "_Q", packed.B, DT.Uint8, packed.N, packed.KBlocks, packed.BlockSize * packed.Bits / 8);
        _g.Initializer<float>(name + "_scales", packed.Scales, DT.Float, packed.N, packed.KBlocks);
        if (packed.ZeroPoints is not null)
            _g.Initializer(name + "_zp", packed.ZeroPoints, DT.Uint8, packed.N, packed.ZeroPoints.Length / packed.N);
        if (r.Bias is not null) { _g.Initializer<float>(name + "_bias", r.Bias, DT.Float, packed.N); _biased.Add(name); }
    }

    /// <summary>A linear's errors: relative weight error, and output error on the calibration rows against RTN's where AWQ chose a scale.</summary>
    QuantizationReport.LayerReport Report(LinearLayer l, float[] w, List<float[]>? rows, RoundedLinear rounded)
    {
        var dq = BlockQuantizer.Dequantize(rounded.Packed);
        double? outErr = null, rtnErr = null;
        if (rows is not null)
        {
            var e = new float[w.Length];
            TensorPrimitives.Subtract(dq, w, e);
            outErr = AwqSearch.OutputError(e, l.N, l.K, rows) / Math.Max(1e-30, AwqSearch.OutputError(w, l.N, l.K, rows));
        }
        var choice = _plan.Choices.GetValueOrDefault(l.Input);
        if (choice is not null) rtnErr = RtnOutputError(l);
        return new(l.Name, l.Weight, l.K, l.N, l.Input, _plan.FoldName(l), choice?.Alpha ?? 0, rounded.ClipMean, RelativeError(w, dq), outErr, rtnErr);
    }

    double RtnOutputError(LinearLayer l)
    {
        var w = _plan.LoadNK(l.Weight);
        var e = BlockQuantizer.Dequantize(_q.Quantize(w, l.N, l.K));
        TensorPrimitives.Subtract(e, w, e);
        var rows = _plan.Calibration!.Stats[l.Input].Rows;
        return AwqSearch.OutputError(e, l.N, l.K, rows) / Math.Max(1e-30, AwqSearch.OutputError(w, l.N, l.K, rows));
    }

    void WriteEmbedding(TensorProto t)
    {
        _progress?.Report("quantizing the embedding");
        int bits = _config.Embedding == "int8" ? 8 : 4;
        var eq = new BlockQuantizer(bits, _config.GroupSize, _config.Symmetric);
        int rows = (int)t.Dims[0], cols = (int)t.Dims[1];
        if (cols % _config.GroupSize != 0)
            throw SioException.InFile(_plan.ModelPath, $"--embedding {_config.Embedding}: group size {_config.GroupSize} does not divide the embedding width {cols} (GatherBlockQuantized needs whole groups)");
        var packed = eq.Quantize(MemoryMarshal.Cast<byte, float>(OnnxModelFile.ReadBytes(t, _plan.InputDir)).ToArray(), rows, cols);
        _g.Initializer(t.Name + "_Q", packed.B, DT.Uint8, rows, packed.B.Length / rows);
        _g.Initializer<float>(t.Name + "_scales", packed.Scales, DT.Float, rows, packed.KBlocks);
        if (packed.ZeroPoints is not null) _g.Initializer(t.Name + "_zp", packed.ZeroPoints, DT.Uint8, rows, packed.ZeroPoints.Length / rows);
        Embedding = new(_config.Embedding, (long)rows * cols * 4, packed.Bytes);
    }

    /// <summary>A tensor that stays float: as stored, or divided by a folded scale (a norm weight, a producer's (K', K) columns).</summary>
    void WriteFloat(TensorProto t)
    {
        var bytes = OnnxModelFile.ReadBytes(t, _plan.InputDir);
        if (_plan.NormDivide.TryGetValue(t.Name, out var s))
        {
            var v = MemoryMarshal.Cast<byte, float>(bytes).ToArray();
            TensorPrimitives.Divide(v, s, v);
            bytes = MemoryMarshal.AsBytes(v.AsSpan()).ToArray();
        }
        else if (_plan.ColumnDivide.TryGetValue(t.Name, out var d))
        {
            var v = MemoryMarshal.Cast<byte, float>(bytes).ToArray();
            int cols = (int)t.Dims[1];
            for (int r = 0; r < (int)t.Dims[0]; r++) TensorPrimitives.Divide(v.AsSpan(r * cols, cols), d, v.AsSpan(r * cols, cols));
            bytes = MemoryMarshal.AsBytes(v.AsSpan()).ToArray();
        }
        if (t.Name == _plan.Graph.LmHead?.Weight) LmHead = new("fp32", bytes.Length, bytes.Length);
        if (t.Name == _plan.Embedding) Embedding = new("fp32", bytes.Length, bytes.Length);
        _g.Initializer(t.Name, bytes, (DT)t.DataType, t.Dims.ToArray());
    }

    void WriteNodes(GraphProto og)
    {
        var mulFor = new Dictionary<string, string>();
        var emitted = new HashSet<LinearGroup>();
        foreach (var (input, inv) in _plan.InsertMul)
            _g.Initializer<float>($"{input}/awq_inv_scale", inv, DT.Float, inv.Length);
        foreach (var n in og.Node)
        {
            foreach (var i in n.Input)
                if (_plan.InsertMul.ContainsKey(i) && !mulFor.ContainsKey(i) && n.OpType == "MatMul" && _quantized.ContainsKey(n.Input[1]))
                    mulFor[i] = _g.Node("Mul", [i, $"{i}/awq_inv_scale"], $"{i}/awq_scale");
            if (_config.FoldOnly && n.OpType == "MatMul" && mulFor.TryGetValue(n.Input[0], out var scaledInput))
            {
                var m = n.Clone();
                m.Input[0] = scaledInput;
                _g.Graph.Node.Add(m);
            }
            else if (!_config.FoldOnly && n.OpType == "MatMul" && _replaced.TryGetValue(n.Input[1], out var l))
            {
                _fusedOf.TryGetValue(l.Weight, out var fused);
                if (fused is not null && !emitted.Add(fused)) continue; // written with the group's first linear
                WriteMatMulNBits(n, l, fused, mulFor.GetValueOrDefault(n.Input[0], n.Input[0]));
            }
            else if (n.OpType == "Gather" && n.Input[0] == _plan.Embedding && _config.Embedding != "fp32") WriteGatherBlockQuantized(n);
            else _g.Graph.Node.Add(n.Clone());
        }
    }

    void WriteMatMulNBits(NodeProto n, LinearLayer l, LinearGroup? fused, string input)
    {
        var name = fused is null ? l.Weight : FusedName(fused);
        long outputs = fused?.Layers.Sum(f => f.N) ?? l.N;
        var inputs = new List<string> { input, name + "_Q", name + "_scales" };
        if (!_config.Symmetric) inputs.Add(name + "_zp");
        if (_biased.Contains(name)) inputs.AddRange(_config.Symmetric ? ["", "", name + "_bias"] : ["", name + "_bias"]);
        string[] names = fused is null ? n.Output.ToArray() : [name + "/fused"];
        _g.Node("MatMulNBits", inputs.ToArray(), fused is null ? n.Name + "NBits" : name + "/NBits", "com.microsoft", outputNames: names,
            attributes: [Attr("K", (long)l.K), Attr("N", outputs), Attr("bits", l == _lmHead8 ? 8L : _config.BitsOf(l)), Attr("block_size", (long)_config.GroupSize),
                Attr("accuracy_level", (long)_config.AccuracyLevel)]);
        if (fused is null) return;
        var sizes = _g.Vector(name + "/split_sizes", fused.Layers.Select(f => (long)f.N).ToArray());
        _g.Node("Split", [names[0], sizes], name + "/Split", outputNames: fused.Layers.Select(f => f.Node.Output[0]).ToArray(), attributes: [Attr("axis", -1L)]);
    }

    void WriteGatherBlockQuantized(NodeProto n)
    {
        var embedding = _plan.Embedding!;
        var inputs = new List<string> { embedding + "_Q", n.Input[1], embedding + "_scales" };
        if (!_config.Symmetric) inputs.Add(embedding + "_zp");
        _g.Node("GatherBlockQuantized", inputs.ToArray(), n.Name + "BlockQuantized", "com.microsoft", outputNames: n.Output.ToArray(),
            attributes: [Attr("gather_axis", 0L), Attr("quantize_axis", 1L), Attr("block_size", (long)_config.GroupSize),
                Attr("bits", _config.Embedding == "int8" ? 8L : 4L)]);
    }

    /// <summary>Groups of int4 linears sharing an input that are written as one MatMulNBits: every member quantized, each
    /// with its own weight and a single output.</summary>
    List<LinearGroup> FusedGroups() =>
        _plan.Graph.Groups.Where(gr => gr.Layers.Count > 1
            && gr.Layers.All(l => _quantized.ContainsKey(l.Weight) && l != _lmHead8 && l.Node.Output.Count == 1 && _config.BitsOf(l) == _config.BitsOf(gr.Layers[0]))
            && gr.Layers.Select(l => l.Weight).Distinct().Count() == gr.Layers.Count).ToList();

    static string FusedName(LinearGroup group) => group.Layers[0].Weight + "_fused";

    /// <summary>Packed linears stacked along N (their rows one after another), with their biases (zeros where one has none).</summary>
    static RoundedLinear Concatenate(IReadOnlyList<RoundedLinear> parts)
    {
        var first = parts[0].Packed;
        var packed = first with
        {
            N = parts.Sum(p => p.Packed.N),
            B = parts.SelectMany(p => p.Packed.B).ToArray(),
            Scales = parts.SelectMany(p => p.Packed.Scales).ToArray(),
            ZeroPoints = first.ZeroPoints is null ? null : parts.SelectMany(p => p.Packed.ZeroPoints!).ToArray(),
        };
        var bias = parts.All(p => p.Bias is null) ? null : parts.SelectMany(p => p.Bias ?? new float[p.Packed.N]).ToArray();
        return new(packed, bias, 1f);
    }

    static double RelativeError(float[] reference, float[] approx)
    {
        double num = 0, den = 0;
        for (int i = 0; i < reference.Length; i++) { double d = approx[i] - reference[i]; num += d * d; den += (double)reference[i] * reference[i]; }
        return den > 0 ? num / den : 0;
    }
}
