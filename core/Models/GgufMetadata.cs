namespace Sio.Models;

/// <summary>GGUF key/value metadata, written in the order added.</summary>
sealed class GgufMetadata
{
    public enum ValueType : uint { UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7, String = 8, Array = 9 }

    public List<Action<BinaryWriter>> Entries { get; } = new();

    public void Str(string key, string value) => Add(key, ValueType.String, w => GgufExporter.WriteString(w, value));
    public void U32(string key, uint value) => Add(key, ValueType.UInt32, w => w.Write(value));
    public void F32(string key, float value) => Add(key, ValueType.Float32, w => w.Write(value));
    public void Bool(string key, bool value) => Add(key, ValueType.Bool, w => w.Write(value));

    public void Array<T>(string key, ValueType element, IReadOnlyList<T> items, Action<BinaryWriter, T> write) => Add(key, ValueType.Array, w =>
    {
        w.Write((uint)element);
        w.Write((ulong)items.Count);
        foreach (var item in items) write(w, item);
    });

    public void Strings(string key, IReadOnlyList<string> items) => Array(key, ValueType.String, items, GgufExporter.WriteString);

    void Add(string key, ValueType type, Action<BinaryWriter> value) => Entries.Add(w =>
    {
        GgufExporter.WriteString(w, key);
        w.Write((uint)type);
        value(w);
    });
}
