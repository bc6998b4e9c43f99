using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace Sio.Onnx;

/// <summary>
/// Builds an ONNX graph node by node. Large initializers are streamed at once into an external
/// data file beside the model (so models over 2 GB work and a builder never holds all weights),
/// small ones stay inline.
/// </summary>
public sealed class GraphBuilder : IDisposable
{
    /// <summary>Initializers at or above this size go to the external data file.</summary>
    public const int ExternalThreshold = 1024;
    const int Alignment = 4096; // lets ONNX Runtime memory-map large weights

    readonly GraphProto _graph = new() { Name = "sio" };
    readonly FileStream? _data;
    readonly string? _dataFileName;
    readonly HashSet<string> _names = new();
    int _nodeCount;

    /// <param name="externalDataPath">Where to write large initializers; null keeps every initializer inline.</param>
    public GraphBuilder(string? externalDataPath)
    {
        if (externalDataPath is not null)
        {
            _data = new FileStream(externalDataPath, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
            _dataFileName = Path.GetFileName(externalDataPath);
        }
    }

    public GraphProto Graph => _graph;

    public void Input(string name, TensorProto.Types.DataType type, params object[] dims) => _graph.Input.Add(ValueInfo(name, type, dims));
    public void Output(string name, TensorProto.Types.DataType type, params object[] dims) => _graph.Output.Add(ValueInfo(name, type, dims));

    /// <summary>Adds a node and returns its first output name. Outputs default to "{name}/out{i}".</summary>
    public string Node(string opType, string[] inputs, string? name = null, string domain = "", int outputs = 1,
        string[]? outputNames = null, params AttributeProto[] attributes)
    {
        name ??= $"{opType}_{_nodeCount}";
        _nodeCount++;
        var node = new NodeProto { OpType = opType, Name = name, Domain = domain };
        node.Input.AddRange(inputs);
        if (outputNames is not null) node.Output.AddRange(outputNames);
        else for (int i = 0; i < outputs; i++) node.Output.Add($"{name}/out{i}");
        node.Attribute.AddRange(attributes);
        _graph.Node.Add(node);
        return node.Output[0];
    }

    /// <summary>Outputs of the last node added.</summary>
    public IReadOnlyList<string> LastOutputs => _graph.Node[^1].Output;

    public string Initializer<T>(string name, ReadOnlySpan<T> values, TensorProto.Types.DataType type, params long[] dims) where T : unmanaged
        => Initializer(name, MemoryMarshal.AsBytes(values), type, dims);

    public string Initializer(string name, ReadOnlySpan<byte> bytes, TensorProto.Types.DataType type, params long[] dims) =>
        Initializer(name, bytes, type, inline: false, dims);

    /// <param name="inline">Keep the values in model.onnx whatever their size: shapes, split sizes and slice bounds, which
    /// ONNX Runtime's shape inference reads and cannot read from external data.</param>
    string Initializer(string name, ReadOnlySpan<byte> bytes, TensorProto.Types.DataType type, bool inline, long[] dims)
    {
        if (!_names.Add(name)) throw new InvalidOperationException($"duplicate initializer {name}");
        var t = new TensorProto { Name = name, DataType = (int)type };
        t.Dims.AddRange(dims);
        if (_data is null || inline || bytes.Length < ExternalThreshold)
        {
            t.RawData = ByteString.CopyFrom(bytes);
        }
        else
        {
            long pad = (Alignment - _data.Position % Alignment) % Alignment;
            if (pad > 0) _data.Write(new byte[pad]);
            long offset = _data.Position;
            _data.Write(bytes);
            t.DataLocation = TensorProto.Types.DataLocation.External;
            t.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = _dataFileName });
            t.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString() });
            t.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = bytes.Length.ToString() });
        }
        _graph.Initializer.Add(t);
        return name;
    }

    public string Scalar(string name, long value) => Initializer<long>(name, [value], TensorProto.Types.DataType.Int64);
    /// <summary>An int64 vector kept in model.onnx (a shape, split sizes, slice bounds).</summary>
    public string Vector(string name, params long[] values) =>
        Initializer(name, MemoryMarshal.AsBytes(values.AsSpan()), TensorProto.Types.DataType.Int64, inline: true, [values.Length]);

    /// <summary>Writes model.onnx (and closes the external data file).</summary>
    public void Save(string modelPath, IEnumerable<(string Key, string Value)>? metadata = null)
    {
        _data?.Flush();
        _data?.Dispose();
        var model = new ModelProto
        {
            IrVersion = 10,
            ProducerName = "sio",
            ProducerVersion = typeof(GraphBuilder).Assembly.GetName().Version?.ToString() ?? "0",
            Graph = _graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 21 });
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "com.microsoft", Version = 1 });
        foreach (var (k, v) in metadata ?? []) model.MetadataProps.Add(new StringStringEntryProto { Key = k, Value = v });
        OnnxModelFile.Write(model, modelPath);
    }

    public void Dispose() => _data?.Dispose();

    public static AttributeProto Attr(string name, long value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };
    public static AttributeProto Attr(string name, float value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };
    public static AttributeProto Attr(string name, string value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };
    public static AttributeProto Attr(string name, long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    static ValueInfoProto ValueInfo(string name, TensorProto.Types.DataType type, object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d switch
            {
                string p => new TensorShapeProto.Types.Dimension { DimParam = p },
                int v => new TensorShapeProto.Types.Dimension { DimValue = v },
                long v => new TensorShapeProto.Types.Dimension { DimValue = v },
                _ => throw new ArgumentException($"dimension {d}"),
            });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }
}
