using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Onnx;
using Sio.Generation;
using Sio.Models;
using Sio.Onnx;

namespace Sio.Native;

/// <summary>
/// sio's own decode step: one token through a sio model folder's decoder, written out in C# the way llama2.c's
/// <c>forward</c> is, with MatMulNBits linears on <see cref="BlockQuantizedMatrix"/> and float ones on <see cref="Float32Matrix"/>. It reads
/// the weights from the folder's ONNX graph (following the graph's own nodes, so fused q/k/v, AWQ's input scales and
/// bias corrections come along) and reads and writes the same <see cref="KvCache"/> ONNX Runtime does, so a prompt
/// prefilled by ONNX Runtime continues here and the other way round.
///
/// Per layer: x = RMSNorm(residual) → q,k,v → rotary → attention over the cache → o → residual += o →
/// RMSNorm → SiLU(gate)·up → down → residual += down (in a mixture of experts, only the router's top k experts, each
/// weighted). Then RMSNorm and the classifier.
/// </summary>
public sealed unsafe partial class NativeDecoder : IDisposable
{
    sealed class Linear(BlockQuantizedMatrix? quantized, Float32Matrix? fp32, float[]? inputScale) : IDisposable
    {
        public int N => Quantized?.N ?? Fp32!.N;
        public int K => Quantized?.K ?? Fp32!.K;
        public readonly BlockQuantizedMatrix? Quantized = quantized;
        public readonly Float32Matrix? Fp32 = fp32;
        public readonly float[]? InputScale = inputScale;   // an AWQ Mul in front of the node
        public float* Output;                              // (N), written by Multiply
        public long Bytes => Quantized?.Bytes ?? Fp32!.Bytes;
        public void Dispose() { Quantized?.Dispose(); Fp32?.Dispose(); }
    }

    /// <summary>Some outputs of a linear (q, k and v share one when fused).</summary>
    /// <summary>A slice of a linear's output, with the bias added after it (Qwen2's q/k/v), if any.</summary>
    readonly record struct Projection(Linear Linear, int Offset, int Length, float[]? Bias = null)
    {
        public float* Values => Linear.Output + Offset;
    }

    /// <summary>A layer's weights; QNorm/KNorm are Qwen3's per-head RMSNorm weights of q and k (null when absent); a
    /// mixture-of-experts layer has <paramref name="Experts"/> in place of the dense Gate, Up and Down.</summary>
    sealed record Layer(float[] AttnNorm, float[] FfnNorm, Projection Q, Projection K, Projection V, Projection O, Projection Gate, Projection Up, Projection Down,
        float[]? QNorm = null, float[]? KNorm = null, Mixture? Experts = null);

    /// <summary>A sparse mixture's feed-forward (Mixtral, Qwen3-MoE): the router, and each expert's gate, up and down; a
    /// step runs only the <paramref name="TopK"/> experts the router picks (their weights renormalized when the family does).</summary>
    sealed record Mixture(Projection Router, Projection[] Gate, Projection[] Up, Projection[] Down, int TopK, bool Normalize);

    readonly DecoderConfig _c;
    readonly Float32Matrix _embedding;
    readonly Layer[] _layers;
    readonly float[] _finalNorm;
    readonly Projection _classifier;
    readonly List<Linear> _linears;
    readonly float[] _cos, _sin;          // (context, head / 2)
    readonly bool _interleaved;
    readonly float _eps;
    readonly WorkerTeam _team;
    readonly Int8Activation _activation;
    readonly float* _residual, _normed, _scaled, _attention, _hidden, _scores, _routerWeights;
    readonly object _stepLock = new();
    /// <summary>Attention reads bfloat16 copies of the keys and values (models with quantized weights, whose activations
    /// the native decoder rounds to int8 anyway); float models read the float entries.</summary>
    readonly bool _bf16KeysValues;

    /// <summary>Weight bytes one step streams (of a mixture's experts, the share of the k it runs).</summary>
    public long WeightBytes { get; }
    /// <summary>How the linears are stored, e.g. "int4 g32 ×85, fp32 ×1".</summary>
    public string Description { get; }

    NativeDecoder(DecoderConfig c, Float32Matrix embedding, Layer[] layers, float[] finalNorm, Projection classifier, List<Linear> linears,
        float[] cos, float[] sin, bool interleaved, float eps, int threads, bool spin)
    {
        _c = c; _embedding = embedding; _layers = layers; _finalNorm = finalNorm; _classifier = classifier; _linears = linears;
        _cos = cos; _sin = sin; _interleaved = interleaved; _eps = eps;
        _team = new WorkerTeam(threads, spin);
        int widest = Math.Max(Math.Max(c.Dim, c.HiddenDim), c.QDim);
        _activation = new Int8Activation(widest);
        float* Buffer(int n)
        {
            nuint bytes = (nuint)((n + 16) / 16 * 16 * sizeof(float));
            var p = (float*)NativeMemory.AlignedAlloc(bytes, 64);
            NativeMemory.Clear(p, bytes);
            return p;
        }
        _residual = Buffer(c.Dim); _normed = Buffer(widest); _scaled = Buffer(widest); _attention = Buffer(c.QDim); _hidden = Buffer(c.HiddenDim);
        _scores = Buffer(c.ContextLength * c.Heads);
        _routerWeights = Buffer(Math.Max(1, c.Experts));
        foreach (var l in linears) l.Output = Buffer(l.N);
        var kinds = linears.GroupBy(l => l.Quantized is { } q ? $"int{q.Bits} g{q.BlockSize}{(q.Bf16Scales ? " bf16 scales" : "")}" : "fp32").Select(g => $"{g.Key} ×{g.Count()}");
        _bf16KeysValues = linears.Any(l => l.Quantized is not null);
        var expertLinears = layers.Where(l => l.Experts is not null)
            .SelectMany(l => l.Experts!.Gate.Concat(l.Experts.Up).Concat(l.Experts.Down)).Select(p => p.Linear).ToHashSet();
        double expertShare = c.Experts > 0 ? (double)c.ExpertsPerToken / c.Experts : 1;
        WeightBytes = linears.Sum(l => expertLinears.Contains(l) ? (long)(l.Bytes * expertShare) : l.Bytes);
        Description = string.Join(", ", kinds) + (_bf16KeysValues ? ", bf16 keys/values" : "")
            + (System.Runtime.Intrinsics.X86.Avx512BW.IsSupported ? "" : "; scalar kernels: this CPU has no AVX-512BW, expect it slower than ONNX Runtime");
    }

    /// <summary>Loads the decoder of a model folder, or explains what in the graph the native engine cannot run.</summary>
    public static NativeDecoder Load(string folder, ModelManifest manifest, int threads, bool spin = true)
    {
        var reader = new GraphReader(folder, manifest);
        try { return reader.Build(threads > 0 ? threads : Environment.ProcessorCount, spin); }
        catch
        {
            reader.DisposeBuilt(); // free what was built before the part it cannot run
            throw;
        }
    }

    /// <summary>Runs <paramref name="token"/> at <paramref name="position"/>: writes its key and value into the cache and
    /// the logits of the next token into <paramref name="logits"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Step(int token, int position, KvCache cache, Span<float> logits)
    {
        if ((uint)token >= (uint)_c.VocabSize) throw new SioException($"token id {token} is outside the vocabulary of {_c.VocabSize}");
        if ((uint)position >= (uint)Math.Min(cache.Capacity, _c.ContextLength)) throw new SioException($"position {position} is outside the cache of {cache.Capacity}");
        if (logits.Length < _c.VocabSize) throw new ArgumentException("logits buffer too small");
        lock (_stepLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_bf16KeysValues) UpdateBf16(cache, position);
            int dim = _c.Dim;
            _embedding.Row(token).CopyTo(new Span<float>(_residual, dim));
            for (int l = 0; l < _layers.Length; l++)
            {
                var layer = _layers[l];
                RmsNorm(_residual, layer.AttnNorm, _normed, dim, _eps);
                Multiply(_normed, layer.Q, layer.K, layer.V);
                AddBias(layer.Q); AddBias(layer.K); AddBias(layer.V);
                if (layer.QNorm is { } qn) NormalizeHeads(layer.Q.Values, _c.Heads, qn);
                if (layer.KNorm is { } kn) NormalizeHeads(layer.K.Values, _c.KvHeads, kn);
                Rotate(layer.Q.Values, _c.Heads, position);
                Rotate(layer.K.Values, _c.KvHeads, position);
                Attend(layer, cache, l, position);
                Multiply(_attention, layer.O);
                Add(_residual, layer.O.Values, dim);
                RmsNorm(_residual, layer.FfnNorm, _normed, dim, _eps);
                if (layer.Experts is { } experts)
                {
                    MixtureOfExperts(experts);
                    continue;
                }
                Multiply(_normed, layer.Gate, layer.Up);
                SwiGlu(layer.Gate.Values, layer.Up.Values, _hidden, _c.HiddenDim);
                Multiply(_hidden, layer.Down);
                Add(_residual, layer.Down.Values, dim);
            }
            RmsNorm(_residual, _finalNorm, _normed, dim, _eps);
            Multiply(_normed, _classifier);
            new ReadOnlySpan<float>(_classifier.Values, _c.VocabSize).CopyTo(logits);
            if (_bf16KeysValues) cache.Bf16Valid = position + 1;
        }
    }

    static void Add(float* into, float* add, int n)
    {
        for (int i = 0; i < n; i++) into[i] += add[i];
    }

    /// <summary>
    /// residual += Σ over the router's top k experts of weight · down(SiLU(gate) · up), with the weights the router's
    /// softmax gives them (renormalized over the k when the family does). Only those experts' rows are computed: a
    /// decode step streams k of the experts' weights, not all of them as the exact decomposition in the graph does.
    /// </summary>
    void MixtureOfExperts(Mixture m)
    {
        Multiply(_normed, m.Router);
        int count = m.Router.Length;
        var probabilities = new Span<float>(_routerWeights, count);
        new ReadOnlySpan<float>(m.Router.Values, count).CopyTo(probabilities);
        SoftMax(_routerWeights, count);
        Span<int> chosen = stackalloc int[m.TopK];
        Span<float> weights = stackalloc float[m.TopK];
        float total = 0;
        for (int j = 0; j < m.TopK; j++)
        {
            int best = -1;   // the largest not yet chosen; the lower index on a tie, as ONNX's TopK orders them
            for (int e = 0; e < count; e++)
                if (!chosen[..j].Contains(e) && (best < 0 || probabilities[e] > probabilities[best])) best = e;
            chosen[j] = best;
            total += weights[j] = probabilities[best];
        }
        for (int j = 0; j < m.TopK; j++)
        {
            int e = chosen[j];
            Run(_normed, m.Gate[e].Linear, m.Gate[e].Offset, m.Gate[e].Length);
            Run(_normed, m.Up[e].Linear, m.Up[e].Offset, m.Up[e].Length);
            SwiGlu(m.Gate[e].Values, m.Up[e].Values, _hidden, _c.HiddenDim);
            Multiply(_hidden, m.Down[e]);
            float w = m.Normalize ? weights[j] / total : weights[j];
            float* down = m.Down[e].Values;
            for (int i = 0; i < _c.Dim; i++) _residual[i] += w * down[i];
        }
    }

    /// <summary>Runs each distinct linear behind the projections once on <paramref name="input"/>.</summary>
    void Multiply(float* input, Projection a, Projection? b = null, Projection? c = null)
    {
        Run(input, a.Linear);
        if (b is { } pb && pb.Linear != a.Linear) Run(input, pb.Linear);
        if (c is { } pc && pc.Linear != a.Linear && pc.Linear != b?.Linear) Run(input, pc.Linear);
    }

    void Run(float* input, Linear linear) => Run(input, linear, 0, linear.N);

    /// <summary>Rows [first, first + count) of <paramref name="linear"/> (one expert's part of a fused linear) into its output.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void Run(float* input, Linear linear, int first, int count)
    {
        if (linear.InputScale is { } s)
        {
            for (int i = 0; i < linear.K; i++) _scaled[i] = input[i] * s[i];
            input = _scaled;
        }
        nint output = (nint)linear.Output;
        if (linear.Quantized is { } q)
        {
            _activation.Quantize(new ReadOnlySpan<float>(input, linear.K));
            _activation.BlockSums(q.BlockSize);
            _team.For(count, 16, (start, end) => q.Multiply(_activation, (float*)output, first + start, first + end));
        }
        else
        {
            nint x = (nint)input;
            _team.For(count, 16, (start, end) => linear.Fp32!.Multiply((float*)x, (float*)output, first + start, first + end));
        }
    }

    /// <summary>Rotary embedding of <paramref name="heads"/> heads in place, at <paramref name="position"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first call: tiering would leave it unoptimized for the first thousands of calls
    void Rotate(float* x, int heads, int position)
    {
        int head = _c.HeadDim, half = head / 2;
        fixed (float* cosRow = &_cos[position * half], sinRow = &_sin[position * half])
            for (int h = 0; h < heads; h++)
            {
                float* v = x + h * head;
                for (int i = 0; i < half; i++)
                {
                    int a = _interleaved ? 2 * i : i, b = _interleaved ? 2 * i + 1 : i + half;
                    float x0 = v[a], x1 = v[b];
                    v[a] = x0 * cosRow[i] - x1 * sinRow[i];
                    v[b] = x0 * sinRow[i] + x1 * cosRow[i];
                }
            }
    }

    /// <summary>Brings the cache's bfloat16 copies up to <paramref name="position"/>: entries ONNX Runtime wrote (a prompt,
    /// a verification pass) since the last native step.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void UpdateBf16(KvCache cache, int position)
    {
        int head = _c.HeadDim, capacity = cache.Capacity;
        if (cache.Bf16Keys is null)
        {
            cache.Bf16Keys = new ushort[_c.Layers][];
            cache.Bf16Values = new ushort[_c.Layers][];
            for (int l = 0; l < _c.Layers; l++)
            {
                cache.Bf16Keys[l] = new ushort[(long)_c.KvHeads * capacity * head];
                cache.Bf16Values[l] = new ushort[cache.Bf16Keys[l].Length];
            }
            cache.Bf16Valid = 0;
        }
        int from = cache.Bf16Valid;
        if (from >= position) return;
        for (int l = 0; l < _c.Layers; l++)
            for (int h = 0; h < _c.KvHeads; h++)
            {
                int start = (h * capacity + from) * head, count = (position - from) * head;
                Bf16.From(cache.KeyBuffer(l).AsSpan(start, count), cache.Bf16Keys[l].AsSpan(start, count));
                Bf16.From(cache.ValueBuffer(l).AsSpan(start, count), cache.Bf16Values![l].AsSpan(start, count));
            }
        cache.Bf16Valid = position;
    }

    /// <summary>Stores this position's key and value, then attends each query head over positions 0 … position.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void Attend(Layer layer, KvCache cache, int l, int position)
    {
        int head = _c.HeadDim, capacity = cache.Capacity, group = _c.Heads / _c.KvHeads;
        var keys = cache.KeyBuffer(l);
        var values = cache.ValueBuffer(l);
        for (int h = 0; h < _c.KvHeads; h++)
        {
            int at = (h * capacity + position) * head;
            new ReadOnlySpan<float>(layer.K.Values + h * head, head).CopyTo(keys.AsSpan(at, head));
            new ReadOnlySpan<float>(layer.V.Values + h * head, head).CopyTo(values.AsSpan(at, head));
            if (_bf16KeysValues)
            {
                Bf16.From(keys.AsSpan(at, head), cache.Bf16Keys![l].AsSpan(at, head));
                Bf16.From(values.AsSpan(at, head), cache.Bf16Values![l].AsSpan(at, head));
            }
        }
        float scale = 1f / MathF.Sqrt(head);
        int length = position + 1;
        fixed (float* keyBase = keys, valueBase = values)
        fixed (ushort* keyBf16 = _bf16KeysValues ? cache.Bf16Keys![l] : null, valueBf16 = _bf16KeysValues ? cache.Bf16Values![l] : null)
        {
            nint k0 = _bf16KeysValues ? (nint)keyBf16 : (nint)keyBase, v0 = _bf16KeysValues ? (nint)valueBf16 : (nint)valueBase;
            int rowBytes = head * (_bf16KeysValues ? sizeof(ushort) : sizeof(float));
            _team.For(_c.Heads, 1, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (first, end) =>
            {
                for (int h = first; h < end; h++)
                {
                    int kv = h / group;
                    byte* k = (byte*)k0 + (long)kv * capacity * rowBytes, v = (byte*)v0 + (long)kv * capacity * rowBytes;
                    float* q = layer.Q.Values + h * head, scores = _scores + h * _c.ContextLength, output = _attention + h * head;
                    if (_bf16KeysValues) AttendHead<Bf16>(q, k, v, scores, output, head, length, scale);
                    else AttendHead<Fp32>(q, k, v, scores, output, head, length, scale);
                }
            });
        }
    }

    /// <summary>softmax(q · K / √head) · V for one head over <paramref name="length"/> cached positions, whose keys and
    /// values are stored as <typeparamref name="T"/> (rows of <paramref name="head"/> values).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first call: tiering would leave it unoptimized for the first thousands of calls
    static void AttendHead<T>(float* q, byte* k, byte* v, float* scores, float* output, int head, int length, float scale)
        where T : IStoredFloat
    {
        int row = head * T.Size;
        bool wide = head % 16 == 0 && Vector512.IsHardwareAccelerated;
        for (int t = 0; t < length; t++, k += row)
            if (wide)
            {
                // independent partial sums, so neighbouring positions overlap in the pipeline
                var a0 = Vector512<float>.Zero; var a1 = Vector512<float>.Zero;
                int i = 0;
                for (; i + 32 <= head; i += 32)
                {
                    a0 = Vector512.FusedMultiplyAdd(Vector512.Load(q + i), T.Load16(k, i), a0);
                    a1 = Vector512.FusedMultiplyAdd(Vector512.Load(q + i + 16), T.Load16(k, i + 16), a1);
                }
                if (i < head) a0 = Vector512.FusedMultiplyAdd(Vector512.Load(q + i), T.Load16(k, i), a0);
                scores[t] = Vector512.Sum(a0 + a1) * scale;
            }
            else
            {
                // small heads: a library call per position would cost more than the work
                float dot = 0;
                for (int i = 0; i < head; i++) dot += q[i] * T.Load(k, i);
                scores[t] = dot * scale;
            }
        SoftMax(scores, length);
        if (!wide)
        {
            new Span<float>(output, head).Clear();
            for (int t = 0; t < length; t++, v += row)
            {
                float w = scores[t];
                for (int i = 0; i < head; i++) output[i] += w * T.Load(v, i);
            }
            return;
        }
        // 64 output values at a time stay in registers across all positions
        for (int d = 0; d < head; d += 64)
        {
            int width = Math.Min(64, head - d);
            var o0 = Vector512<float>.Zero; var o1 = Vector512<float>.Zero; var o2 = Vector512<float>.Zero; var o3 = Vector512<float>.Zero;
            byte* r = v;
            for (int t = 0; t < length; t++, r += row)
            {
                var w = Vector512.Create(scores[t]);
                o0 = Vector512.FusedMultiplyAdd(T.Load16(r, d), w, o0);
                if (width > 16) o1 = Vector512.FusedMultiplyAdd(T.Load16(r, d + 16), w, o1);
                if (width > 32) o2 = Vector512.FusedMultiplyAdd(T.Load16(r, d + 32), w, o2);
                if (width > 48) o3 = Vector512.FusedMultiplyAdd(T.Load16(r, d + 48), w, o3);
            }
            o0.Store(output + d);
            if (width > 16) o1.Store(output + d + 16);
            if (width > 32) o2.Store(output + d + 32);
            if (width > 48) o3.Store(output + d + 48);
        }
    }

    /// <summary>x = softmax(x) in place; weights under 1e-30 become 0, so that no product with them is a subnormal float
    /// (which this CPU handles in microcode).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void SoftMax(float* x, int n)
    {
        float max = float.NegativeInfinity;
        for (int i = 0; i < n; i++) max = MathF.Max(max, x[i]);
        int v = Vector512.IsHardwareAccelerated ? n / 16 * 16 : 0;
        var sums = Vector512<float>.Zero;
        for (int i = 0; i < v; i += 16)
        {
            var e = Vector512.Exp(Vector512.Load(x + i) - Vector512.Create(max));
            e.Store(x + i);
            sums += e;
        }
        float sum = Vector512.Sum(sums);
        for (int i = v; i < n; i++) sum += x[i] = MathF.Exp(x[i] - max);
        float scale = 1f / sum;
        for (int i = 0; i < n; i++)
        {
            float w = x[i] * scale;
            x[i] = w < 1e-30f ? 0 : w;
        }
    }

    /// <summary>x · weight / rms(x), into output.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void AddBias(Projection p)
    {
        if (p.Bias is not { } bias) return;
        var values = p.Values;
        for (int i = 0; i < bias.Length; i++) values[i] += bias[i];
    }

    /// <summary>RMSNorm of each head of q or k in place (Qwen3), with the layer's epsilon.</summary>
    void NormalizeHeads(float* x, int heads, float[] weight)
    {
        int head = _c.HeadDim;
        for (int h = 0; h < heads; h++) RmsNorm(x + h * head, weight, x + h * head, head, _eps);
    }

    static void RmsNorm(float* x, float[] weight, float* output, int n, float eps)
    {
        float squares = 0;
        for (int i = 0; i < n; i++) squares += x[i] * x[i];
        float scale = 1f / MathF.Sqrt(squares / n + eps);
        for (int i = 0; i < n; i++) output[i] = x[i] * scale * weight[i];
    }

    /// <summary>hidden = SiLU(gate) · up = gate · up / (1 + e^−gate).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void SwiGlu(float* gate, float* up, float* hidden, int n)
    {
        int v = Vector512.IsHardwareAccelerated ? n / 16 * 16 : 0;
        for (int i = 0; i < v; i += 16)
        {
            var g = Vector512.Load(gate + i);
            (g * Vector512.Load(up + i) / (Vector512<float>.One + Vector512.Exp(-g))).Store(hidden + i);
        }
        for (int i = v; i < n; i++) hidden[i] = gate[i] * up[i] / (1f + MathF.Exp(-gate[i]));
    }

    bool _disposed;

    public void Dispose()
    {
        lock (_stepLock)
        {
            if (_disposed) return;
            _disposed = true;
        }
        _team.Dispose();
        _activation.Dispose();
        _embedding.Dispose();
        foreach (var l in _linears) { l.Dispose(); NativeMemory.AlignedFree(l.Output); }
        foreach (var p in new[] { (nint)_residual, (nint)_normed, (nint)_scaled, (nint)_attention, (nint)_hidden, (nint)_scores, (nint)_routerWeights }) NativeMemory.AlignedFree((void*)p);
    }
}
