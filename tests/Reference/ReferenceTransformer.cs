namespace Sio.Tests.Reference;

/// <summary>
/// An independent pure-C# forward pass written straight from llama2.c's run.c math (no ONNX, no sio
/// code): it reads a version-0 checkpoint itself and computes logits one token at a time.
/// </summary>
public sealed class ReferenceTransformer
{
    // config
    public readonly int Dim, Hidden, Layers, Heads, KvHeads, Vocab, SeqLen, HeadSize, KvDim;
    // weights
    readonly float[] _embed;       // (vocab, dim)
    readonly float[][] _rmsAtt;    // (layer)(dim)
    readonly float[][] _wq, _wk, _wv, _wo; // (layer)(out, in)
    readonly float[][] _rmsFfn;
    readonly float[][] _w1, _w2, _w3;
    readonly float[] _rmsFinal;    // (dim)
    readonly float[] _wcls;        // (vocab, dim)
    // state
    readonly float[][] _keyCache, _valueCache; // (layer)(seq, kv_dim)

    public ReferenceTransformer(string checkpointPath)
    {
        using var r = new BinaryReader(File.OpenRead(checkpointPath));
        Dim = r.ReadInt32(); Hidden = r.ReadInt32(); Layers = r.ReadInt32(); Heads = r.ReadInt32(); KvHeads = r.ReadInt32();
        int vocab = r.ReadInt32(); SeqLen = r.ReadInt32();
        bool shared = vocab > 0; Vocab = Math.Abs(vocab);
        HeadSize = Dim / Heads; KvDim = Dim * KvHeads / Heads;
        float[] Read(long n) { var a = new float[n]; for (long i = 0; i < n; i++) a[i] = r.ReadSingle(); return a; }
        float[][] ReadLayers(long n) => Enumerable.Range(0, Layers).Select(_ => Read(n)).ToArray();
        _embed = Read((long)Vocab * Dim);
        _rmsAtt = ReadLayers(Dim);
        _wq = ReadLayers((long)Dim * Dim);
        _wk = ReadLayers((long)KvDim * Dim);
        _wv = ReadLayers((long)KvDim * Dim);
        _wo = ReadLayers((long)Dim * Dim);
        _rmsFfn = ReadLayers(Dim);
        _w1 = ReadLayers((long)Hidden * Dim);
        _w2 = ReadLayers((long)Dim * Hidden);
        _w3 = ReadLayers((long)Hidden * Dim);
        _rmsFinal = Read(Dim);
        Read((long)SeqLen * HeadSize / 2); Read((long)SeqLen * HeadSize / 2); // freq_cis_real, freq_cis_imag
        _wcls = shared ? _embed : Read((long)Vocab * Dim);
        _keyCache = Enumerable.Range(0, Layers).Select(_ => new float[(long)SeqLen * KvDim]).ToArray();
        _valueCache = Enumerable.Range(0, Layers).Select(_ => new float[(long)SeqLen * KvDim]).ToArray();
    }

    static void RmsNorm(float[] o, float[] x, float[] w)
    {
        double ss = 0;
        foreach (var v in x) ss += v * v;
        float scale = 1f / MathF.Sqrt((float)(ss / x.Length) + 1e-5f);
        for (int j = 0; j < x.Length; j++) o[j] = w[j] * (scale * x[j]);
    }

    static void MatMul(float[] o, float[] x, float[] w, int n, int d) // W (d,n) @ x (n) -> o (d)
    {
        for (int i = 0; i < d; i++)
        {
            double v = 0;
            for (int j = 0; j < n; j++) v += w[(long)i * n + j] * x[j];
            o[i] = (float)v;
        }
    }

    static void Softmax(float[] x, int size)
    {
        float max = x[0];
        for (int i = 1; i < size; i++) max = Math.Max(max, x[i]);
        double sum = 0;
        for (int i = 0; i < size; i++) { x[i] = MathF.Exp(x[i] - max); sum += x[i]; }
        for (int i = 0; i < size; i++) x[i] = (float)(x[i] / sum);
    }

    /// <summary>Logits after feeding <paramref name="token"/> at position <paramref name="pos"/>.</summary>
    public float[] Forward(int token, int pos)
    {
        var x = new float[Dim];
        Array.Copy(_embed, (long)token * Dim, x, 0, Dim);
        var xb = new float[Dim]; var xb2 = new float[Dim];
        var q = new float[Dim]; var k = new float[KvDim]; var v = new float[KvDim];
        var hb = new float[Hidden]; var hb2 = new float[Hidden];
        var att = new float[SeqLen];
        int kvMul = Heads / KvHeads;
        for (int l = 0; l < Layers; l++)
        {
            RmsNorm(xb, x, _rmsAtt[l]);
            MatMul(q, xb, _wq[l], Dim, Dim);
            MatMul(k, xb, _wk[l], Dim, KvDim);
            MatMul(v, xb, _wv[l], Dim, KvDim);
            // RoPE: rotate each adjacent pair (i, i+1) of q and k
            for (int i = 0; i < Dim; i += 2)
            {
                int headDim = i % HeadSize;
                float freq = 1.0f / MathF.Pow(10000.0f, headDim / (float)HeadSize);
                float val = pos * freq;
                float fcr = MathF.Cos(val), fci = MathF.Sin(val);
                int rotn = i < KvDim ? 2 : 1;
                for (int vi = 0; vi < rotn; vi++)
                {
                    var vec = vi == 0 ? q : k;
                    float v0 = vec[i], v1 = vec[i + 1];
                    vec[i] = v0 * fcr - v1 * fci;
                    vec[i + 1] = v0 * fci + v1 * fcr;
                }
            }
            Array.Copy(k, 0, _keyCache[l], (long)pos * KvDim, KvDim);
            Array.Copy(v, 0, _valueCache[l], (long)pos * KvDim, KvDim);
            for (int h = 0; h < Heads; h++)
            {
                int kvh = h / kvMul;
                for (int t = 0; t <= pos; t++)
                {
                    double score = 0;
                    for (int i = 0; i < HeadSize; i++) score += q[h * HeadSize + i] * _keyCache[l][(long)t * KvDim + kvh * HeadSize + i];
                    att[t] = (float)(score / Math.Sqrt(HeadSize));
                }
                Softmax(att, pos + 1);
                for (int i = 0; i < HeadSize; i++)
                {
                    double acc = 0;
                    for (int t = 0; t <= pos; t++) acc += att[t] * _valueCache[l][(long)t * KvDim + kvh * HeadSize + i];
                    xb[h * HeadSize + i] = (float)acc;
                }
            }
            MatMul(xb2, xb, _wo[l], Dim, Dim);
            for (int i = 0; i < Dim; i++) x[i] += xb2[i];
            RmsNorm(xb, x, _rmsFfn[l]);
            MatMul(hb, xb, _w1[l], Dim, Hidden);
            MatMul(hb2, xb, _w3[l], Dim, Hidden);
            for (int i = 0; i < Hidden; i++) { float s = hb[i]; hb[i] = s * (1f / (1f + MathF.Exp(-s))) * hb2[i]; }
            MatMul(xb, hb, _w2[l], Hidden, Dim);
            for (int i = 0; i < Dim; i++) x[i] += xb[i];
        }
        RmsNorm(x, x, _rmsFinal);
        var logits = new float[Vocab];
        MatMul(logits, x, _wcls, Dim, Vocab);
        return logits;
    }

    public static int ArgMax(float[] a) { int b = 0; for (int i = 1; i < a.Length; i++) if (a[i] > a[b]) b = i; return b; }

    /// <summary>Mean NLL of predicting ids[first..] by teacher forcing.</summary>
    public (double Nll, int Count) Score(IReadOnlyList<int> ids, int first)
    {
        double nll = 0; int count = 0;
        for (int pos = 0; pos + 1 < ids.Count; pos++)
        {
            var logits = Forward(ids[pos], pos);
            if (pos + 1 < first) continue;
            float max = logits.Max();
            double sum = logits.Sum(l => Math.Exp(l - max));
            nll -= logits[ids[pos + 1]] - max - Math.Log(sum);
            count++;
        }
        return (nll, count);
    }
}
