namespace Sio.Models;

/// <summary>
/// A decoder of any shape with seeded random weights, for throughput work where quality does not
/// matter. Weights are uniform in ±1/sqrt(fan_in), norms are 1; the classifier is tied to the embedding when the config says so.
/// </summary>
public sealed class SyntheticCheckpoint(DecoderConfig config, int seed) : ICheckpoint
{
    public DecoderConfig Config { get; } = config.Validate("--synthetic");
    public string Source => $"synthetic(seed={seed})";

    public float[] Read(string name)
    {
        if (name == "lm_head" && Config.TiedEmbeddings) name = "embed";
        var shape = CheckpointNames.Shape(Config, name);
        long n = CheckpointNames.Elements(Config, name);
        var values = new float[n];
        bool bias = name.EndsWith(".bq") || name.EndsWith(".bk") || name.EndsWith(".bv");
        if (shape.Length == 1 && !bias) { Array.Fill(values, 1f); return values; }
        // One stream per tensor, derived from the seed and the name, so tensors can be read in any order.
        ulong state = (ulong)seed * 0x9E3779B97F4A7C15UL ^ (ulong)StableHash(name) | 1UL;
        float scale = bias ? 0.5f : 1f / MathF.Sqrt(shape[1]) * (name == "embed" ? 8f : 1f);
        for (long i = 0; i < n; i++)
        {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            values[i] = ((state >> 40) * (1f / (1 << 24)) * 2f - 1f) * scale;
        }
        return values;
    }

    static int StableHash(string s)
    {
        unchecked
        {
            int h = 17;
            foreach (var ch in s) h = h * 31 + ch;
            return h;
        }
    }

    public void Dispose() { }
}
