namespace Sio.Tests.Reference;

/// <summary>Writes random llama2.c version-0 checkpoints of any shape (test fixtures for both rotary paths and GQA).</summary>
public static class Llama2cWriter
{
    public static void WriteRandom(string path, int dim, int hidden, int layers, int heads, int kvHeads, int vocab, int seqLen, int seed, bool shared = true)
    {
        var rng = new Random(seed);
        int headSize = dim / heads, kvDim = kvHeads * headSize;
        using var w = new BinaryWriter(File.Create(path));
        foreach (var v in new[] { dim, hidden, layers, heads, kvHeads, shared ? vocab : -vocab, seqLen }) w.Write(v);
        void Rand(long n, float scale) { for (long i = 0; i < n; i++) w.Write((float)((rng.NextDouble() * 2 - 1) * scale)); }
        void Norms(long n) { for (long i = 0; i < n; i++) w.Write((float)(0.8 + 0.4 * rng.NextDouble())); }
        float s = 1f / MathF.Sqrt(dim);
        Rand((long)vocab * dim, 1f);
        Norms((long)layers * dim);
        Rand((long)layers * dim * dim, s);
        Rand((long)layers * kvDim * dim, s);
        Rand((long)layers * kvDim * dim, s);
        Rand((long)layers * dim * dim, s);
        Norms((long)layers * dim);
        Rand((long)layers * hidden * dim, s);
        Rand((long)layers * dim * hidden, 1f / MathF.Sqrt(hidden));
        Rand((long)layers * hidden * dim, s);
        Norms(dim);
        Rand(2L * seqLen * headSize / 2, 1f); // freq_cis (unused by readers)
        if (!shared) Rand((long)vocab * dim, s);
    }
}
