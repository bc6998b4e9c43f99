// A mixture-of-experts layer two ways on ONNX Runtime's CPU provider, side by side in one process: sio's decomposition
// (softmax → top k → a dense weight per expert; every expert runs, weighted by zero when not chosen) and ONNX Runtime's
// com.microsoft MoE operator (only the chosen experts run; fp32, SwiGLU with its gate and up rows interleaved). The two
// are checked to agree before anything is timed.
//
//   dotnet run --project bench/Moe -c Release -- [--hidden 1024] [--inter 3584] [--experts 8] [--k 2] [--rows 1,64] [--runs 50]
using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using Sio.Onnx;
using static Sio.Onnx.GraphBuilder;
using DT = Onnx.TensorProto.Types.DataType;

int Opt(string name, int fallback) => args.SkipWhile(a => a != name).Skip(1).Select(int.Parse).DefaultIfEmpty(fallback).First();
int hidden = Opt("--hidden", 1024), inter = Opt("--inter", 3584), experts = Opt("--experts", 8), k = Opt("--k", 2), runs = Opt("--runs", 50);
var rowsList = args.SkipWhile(a => a != "--rows").Skip(1).Select(v => v.Split(',').Select(int.Parse).ToArray()).DefaultIfEmpty([1, 64]).First();

var rng = new Random(1);
float[] Rand(long n, float scale) { var a = new float[n]; for (long i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * scale; return a; }
var router = Rand((long)hidden * experts, 0.5f);                       // [H][E]
var gate = Rand((long)experts * inter * hidden, 0.05f);                // [e][j][h]
var up = Rand((long)experts * inter * hidden, 0.05f);
var down = Rand((long)experts * hidden * inter, 0.05f);               // [e][h][j]
var dir = Directory.CreateTempSubdirectory("sio-moe-bench").FullName;
try
{
    string decomposed = Path.Combine(dir, "decomposed.onnx"), fused = Path.Combine(dir, "moe.onnx");
    Decomposed(decomposed);
    Fused(fused);
    var options = new SessionOptions { IntraOpNumThreads = Environment.ProcessorCount, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
    options.AddSessionConfigEntry("session.intra_op.allow_spinning", "1");
    using var a = new InferenceSession(decomposed, options);
    using var b = new InferenceSession(fused, options);
    Console.WriteLine($"MoE layer: hidden {hidden}, intermediate {inter}, {experts} experts, top {k}; fp32; {Environment.ProcessorCount} threads; median of {runs} runs, interleaved");
    foreach (var rows in rowsList)
    {
        var x = Rand((long)rows * hidden, 1f);
        var ya = Run(a, x, rows);
        var yb = Run(b, x, rows);
        double err = ya.Select((v, i) => Math.Abs(v - yb[i])).Max(), mag = ya.Max(Math.Abs);
        var ta = new List<double>(); var tb = new List<double>();
        for (int r = 0; r < runs; r++) { ta.Add(Time(a, x, rows)); tb.Add(Time(b, x, rows)); }
        double ma = Median(ta), mb = Median(tb);
        Console.WriteLine($"rows {rows,4}: decomposition {ma:F3} ms, MoE operator {mb:F3} ms ({ma / mb:F2}x); outputs agree to {err:G2} (largest {mag:G3})");
    }
}
finally { Directory.Delete(dir, true); }

float[] Run(InferenceSession s, float[] x, int rows)
{
    using var input = OrtValue.CreateTensorValueFromMemory(x, [rows, hidden]);
    using var outputs = s.Run(new RunOptions(), ["X"], [input], ["Y"]);
    return outputs[0].GetTensorDataAsSpan<float>().ToArray();
}
double Time(InferenceSession s, float[] x, int rows) { var w = Stopwatch.StartNew(); Run(s, x, rows); return w.Elapsed.TotalMilliseconds; }
static double Median(List<double> v) { var s = v.Order().ToList(); return s[s.Count / 2]; }

float[] Transposed(float[] w, long offset, int outDim, int inDim)
{
    var t = new float[(long)inDim * outDim];
    for (int o = 0; o < outDim; o++) for (int i = 0; i < inDim; i++) t[(long)i * outDim + o] = w[offset + (long)o * inDim + i];
    return t;
}

void Decomposed(string path)
{
    using var g = new GraphBuilder(path + ".data");
    g.Input("X", DT.Float, "rows", hidden);
    g.Output("Y", DT.Float, "rows", hidden);
    var logits = g.Node("MatMul", ["X", g.Initializer<float>("router", router, DT.Float, hidden, experts)], "router");
    var probs = g.Node("Softmax", [logits], "softmax", attributes: Attr("axis", -1L));
    g.Node("TopK", [probs, g.Vector("k", k)], "topk", outputNames: ["top_w", "top_e"], attributes: Attr("axis", -1L));
    var top = g.Node("Div", ["top_w", g.Node("ReduceSum", ["top_w", g.Vector("axis", -1)], "sum", attributes: Attr("keepdims", 1L))], "norm");
    var zeros = g.Node("Mul", [probs, g.Initializer<float>("zero", [0f], DT.Float)], "zeros");
    var weights = g.Node("ScatterElements", [zeros, "top_e", top], "weights", attributes: Attr("axis", -1L));
    string? sum = null;
    for (int e = 0; e < experts; e++)
    {
        long o = (long)e * inter * hidden;
        var gt = g.Node("MatMul", ["X", g.Initializer<float>($"g{e}", Transposed(gate, o, inter, hidden), DT.Float, hidden, inter)], $"gate{e}");
        var ut = g.Node("MatMul", ["X", g.Initializer<float>($"u{e}", Transposed(up, o, inter, hidden), DT.Float, hidden, inter)], $"up{e}");
        var act = g.Node("Mul", [g.Node("Mul", [gt, g.Node("Sigmoid", [gt], $"sig{e}")], $"silu{e}"), ut], $"glu{e}");
        var y = g.Node("MatMul", [act, g.Initializer<float>($"d{e}", Transposed(down, (long)e * hidden * inter, hidden, inter), DT.Float, inter, hidden)], $"down{e}");
        var w = g.Node("Slice", [weights, g.Vector($"s{e}", e), g.Vector($"t{e}", e + 1), g.Vector($"a{e}", -1)], $"w{e}");
        var term = g.Node("Mul", [y, w], $"term{e}");
        sum = sum is null ? term : g.Node("Add", [sum, term], $"add{e}");
    }
    g.Node("Identity", [sum!], "out", outputNames: ["Y"]);
    g.Save(path);
}

void Fused(string path)
{
    using var g = new GraphBuilder(path + ".data");
    g.Input("X", DT.Float, "rows", hidden);
    g.Output("Y", DT.Float, "rows", hidden);
    var logits = g.Node("MatMul", ["X", g.Initializer<float>("router", router, DT.Float, hidden, experts)], "router");
    var fc1 = new float[(long)experts * 2 * inter * hidden]; // [e][2j gate, 2j+1 up][h]
    for (int e = 0; e < experts; e++)
        for (int j = 0; j < inter; j++)
        {
            long src = ((long)e * inter + j) * hidden, dst = ((long)e * 2 * inter + 2 * j) * hidden;
            Array.Copy(gate, src, fc1, dst, hidden);
            Array.Copy(up, src, fc1, dst + hidden, hidden);
        }
    g.Node("MoE", ["X", logits, g.Initializer<float>("fc1", fc1, DT.Float, experts, 2 * inter, hidden), "", g.Initializer<float>("fc2", down, DT.Float, experts, hidden, inter)],
        "moe", "com.microsoft", outputNames: ["Y"],
        attributes: [Attr("k", (long)k), Attr("activation_type", "swiglu"), Attr("normalize_routing_weights", 1L), Attr("swiglu_fusion", 1L),
            Attr("activation_alpha", 1.0f), Attr("activation_beta", 0.0f), Attr("swiglu_limit", 1e30f)]);
    g.Save(path);
}
