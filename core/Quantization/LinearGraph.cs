using Onnx;

namespace Sio.Quantization;

/// <summary>A MatMul whose B input is a constant float weight (K, N).</summary>
public sealed record LinearLayer(NodeProto Node, string Weight, string Input, int K, int N)
{
    public string Name => Node.Name.Length > 0 ? Node.Name : Node.Output[0];
}

/// <summary>Where 1/s goes when a group's input is scaled by s: into a producer, or a new Mul.</summary>
public abstract record Fold
{
    /// <summary>Divide an RMSNorm's weight (K) by s.</summary>
    public sealed record NormWeight(string Initializer) : Fold;
    /// <summary>Divide the output columns of the producing linear's weight (K', K) by s.</summary>
    public sealed record ProducerColumns(string Weight) : Fold;
    /// <summary>Insert Mul(x, 1/s) in front of the group.</summary>
    public sealed record InsertMul : Fold;
}

/// <summary>Linears that share one input: AWQ scales them together.</summary>
public sealed record LinearGroup(string Input, IReadOnlyList<LinearLayer> Layers, Fold Fold)
{
    public int K => Layers[0].K;
}

/// <summary>Finds the quantizable linears of a graph and how their input scales can be folded away.</summary>
public sealed class LinearGraph
{
    public IReadOnlyList<LinearLayer> Linears { get; }
    public IReadOnlyList<LinearGroup> Groups { get; }
    public LinearLayer? LmHead { get; }

    readonly Dictionary<string, TensorProto> _initializers;
    readonly Dictionary<string, NodeProto> _producers = new();
    readonly Dictionary<string, List<NodeProto>> _consumers = new();

    public LinearGraph(GraphProto graph, QuantizationConfig config)
    {
        _initializers = graph.Initializer.ToDictionary(t => t.Name);
        foreach (var n in graph.Node)
        {
            foreach (var o in n.Output) if (o.Length > 0) _producers[o] = n;
            foreach (var i in n.Input)
            {
                if (!_consumers.TryGetValue(i, out var list)) _consumers[i] = list = new();
                list.Add(n);
            }
        }
        var outputs = graph.Output.Select(o => o.Name).ToHashSet();
        var linears = new List<LinearLayer>();
        LinearLayer? lmHead = null;
        foreach (var n in graph.Node)
        {
            if (n.OpType != "MatMul" || n.Domain.Length > 0 || n.Input.Count != 2) continue;
            if (!_initializers.TryGetValue(n.Input[1], out var w) || w.DataType != (int)TensorProto.Types.DataType.Float || w.Dims.Count != 2) continue;
            if (UseCount(n.Input[1]) != 1) continue; // a shared weight is not rewritten
            var layer = new LinearLayer(n, n.Input[1], n.Input[0], (int)w.Dims[0], (int)w.Dims[1]);
            bool isHead = outputs.Contains(n.Output[0]) || n.Input[1].Contains("lm_head");
            if (isHead) { lmHead = layer; continue; }
            if (config.IsExcluded(layer.Name) || config.IsExcluded(layer.Weight)) continue;
            if (layer.Weight.EndsWith(".mlp.router.weight")) continue; // a mixture's router stays float: rounding it would send tokens to other experts
            linears.Add(layer);
        }
        LmHead = lmHead;
        if (config.LmHead == "int4" && lmHead is not null && !config.IsExcluded(lmHead.Weight)) linears.Add(lmHead);
        Linears = linears;
        Groups = linears.GroupBy(l => l.Input).Select(g => new LinearGroup(g.Key, g.ToList(), FoldFor(g.Key, g.ToList()))).ToList();
    }

    int UseCount(string name) => _consumers.TryGetValue(name, out var c) ? c.Count : 0;
    bool ConsumedOnlyBy(string value, IEnumerable<NodeProto> nodes) => _consumers.TryGetValue(value, out var c) && c.All(nodes.Contains);

    Fold FoldFor(string input, IReadOnlyList<LinearLayer> layers)
    {
        if (!_producers.TryGetValue(input, out var p) || !ConsumedOnlyBy(input, layers.Select(l => l.Node))) return new Fold.InsertMul();
        switch (p.OpType)
        {
            case "SimplifiedLayerNormalization" when p.Output[0] == input && IsPrivateInitializer(p.Input[1]):
                return new Fold.NormWeight(p.Input[1]);
            case "SkipSimplifiedLayerNormalization" when p.Output[0] == input && IsPrivateInitializer(p.Input[2]):
                return new Fold.NormWeight(p.Input[2]);
            case "GroupQueryAttention" when p.Output[0] == input && Attr(p, "num_heads") == Attr(p, "kv_num_heads"):
                return ProducerLinear(p.Input[2], p) ?? (Fold)new Fold.InsertMul();
            case "Mul" when p.Output[0] == input:
                foreach (var operand in p.Input)
                    if (ProducerLinear(operand, p) is { } f) return f;
                break;
        }
        return new Fold.InsertMul();
    }

    Fold? ProducerLinear(string value, NodeProto consumer)
    {
        if (!_producers.TryGetValue(value, out var m) || m.OpType != "MatMul" || m.Domain.Length > 0) return null;
        if (!IsPrivateInitializer(m.Input[1]) || !ConsumedOnlyBy(value, [consumer])) return null;
        return new Fold.ProducerColumns(m.Input[1]);
    }

    bool IsPrivateInitializer(string name) => _initializers.ContainsKey(name) && UseCount(name) == 1;

    static long Attr(NodeProto n, string name) => n.Attribute.FirstOrDefault(a => a.Name == name)?.I ?? -1;
}
