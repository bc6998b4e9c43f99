using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace Sio.Onnx;

/// <summary>Reads and writes ONNX ModelProto files, resolving external data relative to the model.</summary>
public static class OnnxModelFile
{
    public static ModelProto Read(string path)
    {
        if (!File.Exists(path)) throw SioException.InFile(path, "file not found");
        try
        {
            using var s = File.OpenRead(path);
            var cis = new CodedInputStream(s);
            return ModelProto.Parser.ParseFrom(cis);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw SioException.InFile(path, $"not an ONNX model ({e.Message})");
        }
    }

    public static void Write(ModelProto model, string path)
    {
        using var s = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        model.WriteTo(s);
    }

    /// <summary>The bytes of an initializer, inline or external.</summary>
    public static byte[] ReadBytes(TensorProto t, string modelDirectory)
    {
        if (t.DataLocation != TensorProto.Types.DataLocation.External)
        {
            if (!t.RawData.IsEmpty) return t.RawData.ToByteArray();
            if (t.FloatData.Count > 0) return MemoryMarshal.AsBytes(t.FloatData.ToArray().AsSpan()).ToArray();
            if (t.Int64Data.Count > 0) return MemoryMarshal.AsBytes(t.Int64Data.ToArray().AsSpan()).ToArray();
            if (t.Int32Data.Count > 0) return MemoryMarshal.AsBytes(t.Int32Data.ToArray().AsSpan()).ToArray();
            return [];
        }
        string? location = null; long offset = 0; long length = -1;
        foreach (var e in t.ExternalData)
        {
            if (e.Key == "location") location = e.Value;
            else if (e.Key == "offset") offset = long.Parse(e.Value);
            else if (e.Key == "length") length = long.Parse(e.Value);
        }
        if (location is null) throw new SioException($"initializer {t.Name}: external data without a location");
        var root = Path.GetFullPath(modelDirectory).TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
        var file = Path.GetFullPath(Path.Combine(modelDirectory, location));
        if (Path.IsPathRooted(location) || !file.StartsWith(root, StringComparison.Ordinal))
            throw SioException.InFile(modelDirectory, $"initializer {t.Name}: external data location '{location}' leaves the model folder");
        if (!File.Exists(file)) throw SioException.InFile(file, $"external data of {t.Name} not found");
        using var fs = File.OpenRead(file);
        if (length < 0) length = fs.Length - offset;
        if (offset + length > fs.Length) throw SioException.InFile(file, $"external data of {t.Name} is truncated");
        var bytes = new byte[length];
        fs.Position = offset;
        fs.ReadExactly(bytes);
        return bytes;
    }

    public static float[] ReadFloats(TensorProto t, string modelDirectory)
    {
        if (t.DataType != (int)TensorProto.Types.DataType.Float) throw new SioException($"initializer {t.Name}: expected float32");
        return MemoryMarshal.Cast<byte, float>(ReadBytes(t, modelDirectory)).ToArray();
    }
}
