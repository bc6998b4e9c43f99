using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Win32.SafeHandles;

namespace Sio.Models;

/// <summary>
/// A .safetensors file: an 8-byte little-endian header length, a JSON header naming each tensor's
/// dtype, shape and byte range, then the raw data. Reads F32, F16 and BF16 as float32.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    public sealed record Entry(string Name, string DType, long[] Shape, long Begin, long End);

    readonly SafeFileHandle _file;
    readonly long _dataStart;
    public string Path { get; }
    public IReadOnlyDictionary<string, Entry> Tensors { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    public SafetensorsFile(string path)
    {
        Path = path;
        if (!File.Exists(path)) throw SioException.InFile(path, "file not found");
        _file = File.OpenHandle(path);
        try
        {
            long length = RandomAccess.GetLength(_file);
            Span<byte> lenBytes = stackalloc byte[8];
            if (length < 8 || RandomAccess.Read(_file, lenBytes, 0) != 8) throw Broken("shorter than the 8-byte header length");
            ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
            if (headerLength < 2 || headerLength > 100_000_000 || (long)headerLength > length - 8)
                throw Broken($"header length {headerLength} does not fit in a {length}-byte file");
            var header = new byte[headerLength];
            RandomAccess.Read(_file, header, 8);
            _dataStart = 8 + (long)headerLength;
            JsonObject root;
            try { root = JsonNode.Parse(header)?.AsObject() ?? throw Broken("header is not a JSON object"); }
            catch (JsonException e) { throw Broken($"header is not valid JSON ({e.Message})"); }
            catch (InvalidOperationException) { throw Broken("header is not a JSON object"); }

            var tensors = new Dictionary<string, Entry>();
            var metadata = new Dictionary<string, string>();
            foreach (var (name, node) in root)
            {
                if (name == "__metadata__")
                {
                    if (node is JsonObject m) foreach (var (k, v) in m) metadata[k] = v?.ToString() ?? "";
                    continue;
                }
                try
                {
                    var o = node!.AsObject();
                    var dtype = o["dtype"]!.GetValue<string>();
                    var shape = o["shape"]!.AsArray().Select(d => d!.GetValue<long>()).ToArray();
                    var offs = o["data_offsets"]!.AsArray().Select(d => d!.GetValue<long>()).ToArray();
                    if (offs.Length != 2 || offs[0] < 0 || offs[1] < offs[0] || offs[1] > length - _dataStart)
                        throw Broken($"tensor {name}: data_offsets [{string.Join(",", offs)}] lie outside the file");
                    long elements = shape.Aggregate(1L, (a, b) => a * b);
                    int size = ElementSize(dtype);
                    if (size > 0 && elements * size != offs[1] - offs[0])
                        throw Broken($"tensor {name}: shape [{string.Join(",", shape)}] of {dtype} needs {elements * size} bytes, data_offsets give {offs[1] - offs[0]}");
                    tensors[name] = new Entry(name, dtype, shape, offs[0], offs[1]);
                }
                catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException or KeyNotFoundException)
                {
                    throw Broken($"tensor {name}: header entry must have dtype, shape and data_offsets");
                }
            }
            Tensors = tensors;
            Metadata = metadata;
        }
        catch
        {
            _file.Dispose();
            throw;
        }
    }

    SioException Broken(string what) => SioException.InFile(Path, $"broken safetensors header: {what}");

    static int ElementSize(string dtype) => dtype switch
    {
        "F32" or "I32" or "U32" => 4,
        "F16" or "BF16" or "I16" or "U16" => 2,
        "F64" or "I64" or "U64" => 8,
        "I8" or "U8" or "BOOL" => 1,
        _ => 0,
    };

    /// <summary>Reads a tensor as float32, converting F16 and BF16.</summary>
    public float[] ReadFloats(string name)
    {
        if (!Tensors.TryGetValue(name, out var e)) throw SioException.InFile(Path, $"tensor {name} not found");
        long elements = e.Shape.Aggregate(1L, (a, b) => a * b);
        var result = new float[elements];
        switch (e.DType)
        {
            case "F32":
                RandomAccess.Read(_file, MemoryMarshal.AsBytes(result.AsSpan()), _dataStart + e.Begin);
                break;
            case "F16":
            case "BF16":
                var raw = new ushort[elements];
                RandomAccess.Read(_file, MemoryMarshal.AsBytes(raw.AsSpan()), _dataStart + e.Begin);
                if (e.DType == "F16") for (long i = 0; i < elements; i++) result[i] = (float)BitConverter.UInt16BitsToHalf(raw[i]);
                else for (long i = 0; i < elements; i++) result[i] = BitConverter.Int32BitsToSingle(raw[i] << 16);
                break;
            default:
                throw SioException.InFile(Path, $"tensor {name}: dtype {e.DType} is not supported (F32, F16 and BF16 are)");
        }
        return result;
    }

    public void Dispose() => _file.Dispose();

    /// <summary>Writes tensors as one .safetensors file, stored as F32, F16 or BF16 (rounded to nearest even).</summary>
    public static void Write(string path, IEnumerable<(string Name, long[] Shape, float[] Data)> tensors,
        IReadOnlyDictionary<string, string>? metadata = null, string dtype = "F32")
    {
        int size = dtype switch { "F32" => 4, "F16" or "BF16" => 2, _ => throw new ArgumentException($"dtype {dtype}") };
        var list = tensors.ToList();
        var header = new JsonObject();
        if (metadata is not null)
        {
            var m = new JsonObject();
            foreach (var (k, v) in metadata) m[k] = v;
            header["__metadata__"] = m;
        }
        long offset = 0;
        foreach (var (name, shape, data) in list)
        {
            long bytes = (long)data.Length * size;
            header[name] = new JsonObject
            {
                ["dtype"] = dtype,
                ["shape"] = new JsonArray(shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)padded);
        fs.Write(len);
        fs.Write(json);
        for (int i = json.Length; i < padded; i++) fs.WriteByte((byte)' ');
        foreach (var (_, _, data) in list)
        {
            if (dtype == "F32") { fs.Write(MemoryMarshal.AsBytes(data.AsSpan())); continue; }
            var half = new ushort[data.Length];
            for (long i = 0; i < data.Length; i++) half[i] = dtype == "F16" ? BitConverter.HalfToUInt16Bits((Half)data[i]) : ToBFloat16(data[i]);
            fs.Write(MemoryMarshal.AsBytes(half.AsSpan()));
        }
    }

    public static ushort ToBFloat16(float f)
    {
        uint bits = BitConverter.SingleToUInt32Bits(f);
        if (float.IsNaN(f)) return 0x7FC0;
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }
}
