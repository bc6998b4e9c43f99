using System.Runtime.InteropServices;
using Onnx;
using Sio.Models;
using Sio.Onnx;

namespace Sio.Native;

public sealed unsafe partial class NativeDecoder
{
    /// <summary>
    /// Reads a decoder graph into the native engine's layers by following its own nodes (so fused q/k/v, AWQ input
    /// scales, bias corrections and q/k norms come along), and refuses by name what the engine cannot run.
    /// </summary>
    sealed class GraphReader
    {
        readonly string _folder, _path;
        readonly DecoderConfig _c;
        readonly GraphProto _graph;
        readonly Dictionary<string, NodeProto> _producer = new();
        readonly Dictionary<string, TensorProto> _initializers;
        readonly Dictionary<string, NodeProto> _byName;
        readonly Dictionary<string, Linear> _linears = new();
        Float32Matrix? _embedding;

        public GraphReader(string folder, ModelManifest manifest)
        {
            _folder = folder;
            _path = Path.Combine(folder, manifest.ModelFile);
            _c = manifest.Config;
            _graph = OnnxModelFile.Read(_path).Graph;
            foreach (var n in _graph.Node) foreach (var o in n.Output) if (o.Length > 0) _producer[o] = n;
            _initializers = _graph.Initializer.ToDictionary(t => t.Name);
            _byName = _graph.Node.Where(n => n.Name.Length > 0).GroupBy(n => n.Name).ToDictionary(g => g.Key, g => g.First());
        }

        /// <summary>The engine over the whole graph: embedding, every layer, the final norm, the classifier and the rotary tables.</summary>
        public NativeDecoder Build(int threads, bool spin)
        {
            var c = _c;
            var gather = _graph.Node.FirstOrDefault(n => n.Input.Contains("input_ids")) ?? throw Unsupported("nothing reads input_ids");
            if (gather.OpType != "Gather") throw Unsupported($"the embedding is a {gather.OpType} (float32 embeddings only)");
            _embedding = Float32Matrix.FromOutputMajor(c.VocabSize, c.Dim, Floats(gather.Input[0]));
            var layers = new Layer[c.Layers];
            bool interleaved = c.RotaryInterleaved;
            float eps = c.NormEpsilon;
            for (int l = 0; l < c.Layers; l++) layers[l] = ReadLayer(l, ref interleaved, ref eps);
            var finalNorm = NormWeight("/model/norm", out _);
            var classifier = ProjectionOf("logits");
            if (classifier.Length != c.VocabSize || classifier.Linear.K != c.Dim) throw Unsupported($"the classifier is ({classifier.Linear.K} → {classifier.Length}), not ({c.Dim} → {c.VocabSize})");
            var cos = Floats("cos_cache");
            var sin = Floats("sin_cache");
            if (cos.Length != c.ContextLength * (c.HeadDim / 2) || sin.Length != cos.Length) throw Unsupported("the rotary tables do not match the manifest's context and head size");
            return new NativeDecoder(c, _embedding, layers, finalNorm, classifier, _linears.Values.ToList(), cos, sin, interleaved, eps, threads, spin);
        }

        public void DisposeBuilt()
        {
            _embedding?.Dispose();
            foreach (var l in _linears.Values) l.Dispose();
        }

        /// <summary>Layer <paramref name="l"/>: norms, q/k/v (with q/k norms), o, and the SiLU-gated feed-forward, checked against the manifest's shapes.</summary>
        Layer ReadLayer(int l, ref bool interleaved, ref float eps)
        {
            var c = _c;
            var p = $"/model/layers.{l}";
            var gqa = Named($"{p}/attn/GroupQueryAttention");
            interleaved = RotaryInterleaved(gqa);
            var nextNorm = l + 1 < c.Layers ? Named($"/model/layers.{l + 1}/input_layernorm") : Named("/model/norm");
            var (qInput, qNorm) = Unnormed(Unrotated(gqa.Input[0]));
            var (kInput, kNorm) = Unnormed(Unrotated(gqa.Input[1]));
            if ((qNorm is null) != (kNorm is null)) throw Unsupported($"layer {l} normalizes only one of q and k");
            var experts = c.Experts > 0 ? ReadMixture(l) : null;
            var (gate, up) = experts is null ? GatedPair(Named($"{p}/mlp/Mul")) : default;
            var x = new Layer(
                NormWeight($"{p}/input_layernorm", out eps), NormWeight($"{p}/post_attention_layernorm", out _),
                ProjectionOf(qInput), ProjectionOf(kInput), ProjectionOf(gqa.Input[2]),
                ProjectionOf(Named($"{p}/post_attention_layernorm").Input[0]),
                gate, up, experts is null ? ProjectionOf(nextNorm.Input[0]) : default, qNorm, kNorm, experts);
            if (x.Q.Length != c.QDim || x.K.Length != c.KvDim || x.V.Length != c.KvDim || x.O.Length != c.Dim
                || x.Q.Linear.K != c.Dim || x.K.Linear.K != c.Dim || x.V.Linear.K != c.Dim || x.O.Linear.K != c.QDim
                || (experts is null && !IsFeedForward(x.Gate, x.Up, x.Down)))
                throw Unsupported($"layer {l}'s projections do not have the manifest's shapes");
            return x;
        }

        /// <summary>The gate and up projections a SiLU-gated product reads: Mul(gate · Sigmoid(gate), up).</summary>
        (Projection Gate, Projection Up) GatedPair(NodeProto mul)
        {
            var act = Producer(mul.Input[0]);
            if (act.OpType != "Mul" || act.Input.Count != 2 || !_producer.TryGetValue(act.Input[1], out var sigmoid) || sigmoid.OpType != "Sigmoid" || sigmoid.Input[0] != act.Input[0])
                throw Unsupported($"{act.Name}: the feed-forward activation is not SiLU");
            return (ProjectionOf(act.Input[0]), ProjectionOf(mul.Input[1]));
        }

        bool IsFeedForward(Projection gate, Projection up, Projection down) =>
            gate.Length == _c.HiddenDim && up.Length == _c.HiddenDim && down.Length == _c.Dim
            && gate.Linear.K == _c.Dim && up.Linear.K == _c.Dim && down.Linear.K == _c.HiddenDim;

        /// <summary>
        /// Layer <paramref name="l"/>'s mixture as DecoderGraph decomposes it: the router's Softmax and TopK (with a Div when
        /// the family renormalizes), and per expert the SiLU-gated product whose down projection a "weighted" Mul scales.
        /// </summary>
        Mixture ReadMixture(int l)
        {
            var p = $"/model/layers.{l}/mlp";
            var router = ProjectionOf(Named($"{p}/router/Softmax").Input[0]);
            var topK = Named($"{p}/router/TopK");
            int k = (int)MemoryMarshal.Cast<byte, long>(OnnxModelFile.ReadBytes(Initializer(topK.Input[1]), _folder))[0];
            if (router.Length != _c.Experts || router.Linear.K != _c.Dim || k < 1 || k > _c.Experts)
                throw Unsupported($"{p}/router does not route {_c.Dim} values to {_c.Experts} experts, top {k}");
            var (gate, up, down) = (new Projection[_c.Experts], new Projection[_c.Experts], new Projection[_c.Experts]);
            for (int e = 0; e < _c.Experts; e++)
            {
                (gate[e], up[e]) = GatedPair(Named($"/model/layers.{l}/mlp.experts.{e}/Mul"));
                down[e] = ProjectionOf(Named($"{p}/experts.{e}/weighted").Input[0]);
                if (!IsFeedForward(gate[e], up[e], down[e])) throw Unsupported($"expert {e} of layer {l} does not have the manifest's shapes");
            }
            return new Mixture(router, gate, up, down, k, _byName.ContainsKey($"{p}/router/Div"));
        }

        /// <summary>Whether the layer's rotary embedding is interleaved (inside GQA or as a RotaryEmbedding node); refuses attention it cannot run.</summary>
        bool RotaryInterleaved(NodeProto gqa)
        {
            if (IntAttr(gqa, "local_window_size", -1) > 0) throw Unsupported("sliding-window attention");
            if (gqa.Attribute.Any(a => a.Name is "scale" or "softcap" && a.F != 0)) throw Unsupported("attention with a custom scale or soft cap");
            if (gqa.Input.Count < 3 || gqa.Input[1].Length == 0 || gqa.Input[2].Length == 0) throw Unsupported($"{gqa.Name} takes packed q/k/v");
            if (IntAttr(gqa, "do_rotary", 0) == 1) return IntAttr(gqa, "rotary_interleaved", 0) == 1;
            if (_producer.TryGetValue(gqa.Input[0], out var rot) && rot.OpType == "RotaryEmbedding") return IntAttr(rot, "interleaved", 0) == 1;
            throw Unsupported($"{gqa.Name} has no rotary embedding");
        }

        /// <summary>The linear a MatMulNBits or constant-weight MatMul node computes (once per node), with the AWQ input scale of a Mul in front.</summary>
        Linear LinearOf(NodeProto node)
        {
            if (_linears.TryGetValue(node.Name, out var known)) return known;
            float[]? inputScale = null;
            if (_producer.TryGetValue(node.Input[0], out var mul) && mul.OpType == "Mul" && _initializers.ContainsKey(mul.Input[1]))
                inputScale = Floats(mul.Input[1]);
            Linear linear;
            if (node.OpType == "MatMulNBits") linear = new Linear(BlockQuantized(node), null, inputScale);
            else if (node.OpType == "MatMul" && _initializers.TryGetValue(node.Input[1], out var w) && w.Dims.Count == 2)
                linear = new Linear(null, Float32Matrix.FromInputMajor((int)w.Dims[0], (int)w.Dims[1], Floats(w.Name)), inputScale);
            else throw Unsupported($"{node.Name} ({node.OpType}) is not a linear layer it knows");
            if (inputScale is not null && inputScale.Length != linear.K) throw Unsupported($"{node.Name}'s input scale has {inputScale.Length} values for {linear.K} inputs");
            return _linears[node.Name] = linear;
        }

        BlockQuantizedMatrix BlockQuantized(NodeProto node)
        {
            int k = (int)IntAttr(node, "K", 0), n = (int)IntAttr(node, "N", 0), bits = (int)IntAttr(node, "bits", 4), block = (int)IntAttr(node, "block_size", 0);
            if (bits is not (4 or 8)) throw Unsupported($"{node.Name} has {bits}-bit weights (4 or 8 only)");
            string Input(int i) => node.Input.Count > i ? node.Input[i] : "";
            if (Input(4).Length > 0) throw Unsupported($"{node.Name} reorders its blocks (g_idx)");
            var codes = OnnxModelFile.ReadBytes(Initializer(Input(1)), _folder);
            var zeros = Input(3).Length > 0 ? OnnxModelFile.ReadBytes(Initializer(Input(3)), _folder) : [];
            var bias = Input(5).Length > 0 ? Floats(Input(5)) : null;
            try { return new BlockQuantizedMatrix(bits, n, k, block, codes, Floats(Input(2)), zeros, bias); }
            catch (SioException e) when (!e.Message.StartsWith(_path)) { throw Unsupported($"{node.Name}: {e.Message}"); }
        }

        /// <summary>The rows of a linear's output a tensor is: the whole output, a Split's part of a fused linear, plus a bias Add.</summary>
        Projection ProjectionOf(string tensor)
        {
            var node = Producer(tensor);
            if (node.OpType == "Add" && node.Input.Count == 2 && _initializers.ContainsKey(node.Input[1]))
            {
                var biased = ProjectionOf(node.Input[0]);
                var bias = Floats(node.Input[1]);
                if (biased.Bias is not null || bias.Length != biased.Length) throw Unsupported($"{node.Name} is not one bias over its projection");
                return biased with { Bias = bias };
            }
            if (node.OpType == "Split")
            {
                var whole = LinearOf(Producer(node.Input[0]));
                var sizes = _initializers.TryGetValue(node.Input.Count > 1 ? node.Input[1] : "", out var t)
                    ? MemoryMarshal.Cast<byte, long>(OnnxModelFile.ReadBytes(t, _folder)).ToArray() : throw Unsupported($"{node.Name} has no split sizes");
                int index = node.Output.IndexOf(tensor);
                if (sizes.Length != node.Output.Count || sizes.Any(v => v <= 0) || sizes.Sum() != whole.N) throw Unsupported($"{node.Name}'s sizes do not split {whole.N} outputs");
                return new Projection(whole, (int)sizes.Take(index).Sum(), (int)sizes[index]);
            }
            var linear = LinearOf(node);
            return new Projection(linear, 0, linear.N);
        }

        float[] NormWeight(string name, out float eps)
        {
            var node = Named(name);
            if (node.OpType is not ("SimplifiedLayerNormalization" or "SkipSimplifiedLayerNormalization")) throw Unsupported($"{name} is a {node.OpType}");
            eps = node.Attribute.FirstOrDefault(a => a.Name == "epsilon")?.F ?? 1e-5f;
            return Floats(node.Input[^1]);
        }

        string Unrotated(string tensor) => _producer.TryGetValue(tensor, out var n) && n.OpType == "RotaryEmbedding" ? n.Input[0] : tensor;

        /// <summary>Qwen3: Reshape → per-head SimplifiedLayerNormalization → Reshape between the projection and rotary.</summary>
        (string Input, float[]? Weight) Unnormed(string tensor)
        {
            if (!_producer.TryGetValue(tensor, out var back) || back.OpType != "Reshape") return (tensor, null);
            var norm = Producer(back.Input[0]);
            if (norm.OpType != "SimplifiedLayerNormalization") throw Unsupported($"{back.Name} reshapes a {norm.OpType}");
            var split = Producer(norm.Input[0]);
            if (split.OpType != "Reshape") throw Unsupported($"{norm.Name} normalizes a {split.OpType}");
            var weight = Floats(norm.Input[1]);
            if (weight.Length != _c.HeadDim) throw Unsupported($"{norm.Name} normalizes {weight.Length} values, not a head of {_c.HeadDim}");
            return (split.Input[0], weight);
        }

        SioException Unsupported(string what) => SioException.InFile(_path, $"the native engine cannot run this graph: {what} (use --engine onnx)");
        NodeProto Named(string name) => _byName.TryGetValue(name, out var n) ? n : throw Unsupported($"no node {name}");
        NodeProto Producer(string tensor) => _producer.TryGetValue(tensor, out var n) ? n : throw Unsupported($"nothing produces {tensor}");
        TensorProto Initializer(string name) => _initializers.TryGetValue(name, out var t) ? t : throw Unsupported($"{(name.Length == 0 ? "an empty input" : name)} is not a constant");

        float[] Floats(string name)
        {
            var t = Initializer(name);
            return t.DataType == (int)TensorProto.Types.DataType.Float ? OnnxModelFile.ReadFloats(t, _folder) : throw Unsupported($"{name} is not float32");
        }

        static long IntAttr(NodeProto n, string name, long fallback) => n.Attribute.FirstOrDefault(a => a.Name == name)?.I ?? fallback;
    }
}
