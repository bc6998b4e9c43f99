using Microsoft.ML.OnnxRuntime;
using Sio.Onnx;
using DT = Onnx.TensorProto.Types.DataType;

namespace Sio.Tests;

/// <summary>
/// ONNX Runtime's CPU MoE contrib operator against the mixture of experts as Mixtral and Qwen3-MoE define it (softmax over
/// the router's logits, the top k, renormalized or not, each expert a SiLU-gated feed-forward): the layout and attributes
/// under which it is exact, pinned so that an ONNX Runtime upgrade that changes them fails here. bench/Moe times it against
/// sio's decomposition.
/// </summary>
[Trait("Category", "fast")]
public class OrtMoeOperatorTests
{
    const int Hidden = 64, Inter = 96, Experts = 8, K = 2, Rows = 3;

    static float[] Rand(int n, int seed, float scale = 0.2f) { var r = new Random(seed); return Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1) * scale).ToArray(); }

    static readonly float[] X = Rand(Rows * Hidden, 1, 1f), Logits = Rand(Rows * Experts, 2, 2f);
    static readonly float[] Gate = Rand(Experts * Inter * Hidden, 3), Up = Rand(Experts * Inter * Hidden, 4), Down = Rand(Experts * Hidden * Inter, 5); // [e][j][h], [e][h][j]

    /// <summary>The definition, in double precision.</summary>
    static double[] Reference(bool normalize)
    {
        var y = new double[Rows * Hidden];
        for (int r = 0; r < Rows; r++)
        {
            var l = Enumerable.Range(0, Experts).Select(e => (double)Logits[r * Experts + e]).ToArray();
            var p = l.Select(v => Math.Exp(v - l.Max())).ToArray();
            double total = p.Sum();
            p = [.. p.Select(v => v / total)];
            var top = Enumerable.Range(0, Experts).OrderByDescending(e => p[e]).Take(K).ToArray();
            double topSum = normalize ? top.Sum(e => p[e]) : 1;
            foreach (var e in top)
            {
                var mid = new double[Inter];
                for (int j = 0; j < Inter; j++)
                {
                    double g = 0, u = 0;
                    for (int h = 0; h < Hidden; h++) { g += Gate[(e * Inter + j) * Hidden + h] * X[r * Hidden + h]; u += Up[(e * Inter + j) * Hidden + h] * X[r * Hidden + h]; }
                    mid[j] = g / (1 + Math.Exp(-g)) * u;
                }
                for (int h = 0; h < Hidden; h++)
                {
                    double d = 0;
                    for (int j = 0; j < Inter; j++) d += Down[(e * Hidden + h) * Inter + j] * mid[j];
                    y[r * Hidden + h] += p[e] / topSum * d;
                }
            }
        }
        return y;
    }

    /// <summary>The operator with fc1 as [expert][2·inter][hidden], each gate row followed by its up row (swiglu_fusion 1),
    /// fc2 as [expert][hidden][inter], the router's logits as router_probs, and SwiGLU made SiLU-GLU (alpha 1, beta 0, no clamp).</summary>
    static float[] Operator(bool normalize, long swigluFusion = 1)
    {
        var fc1 = new float[Experts * 2 * Inter * Hidden];
        for (int e = 0; e < Experts; e++)
            for (int j = 0; j < Inter; j++)
            {
                Array.Copy(Gate, (e * Inter + j) * Hidden, fc1, (e * 2 * Inter + 2 * j) * Hidden, Hidden);
                Array.Copy(Up, (e * Inter + j) * Hidden, fc1, (e * 2 * Inter + 2 * j + 1) * Hidden, Hidden);
            }
        var dir = TestPaths.TempDir("moe");
        var path = Path.Combine(dir, "m.onnx");
        using (var g = new GraphBuilder(null))
        {
            g.Input("X", DT.Float, Rows, Hidden);
            g.Input("R", DT.Float, Rows, Experts);
            g.Output("Y", DT.Float, Rows, Hidden);
            g.Node("MoE", ["X", "R", g.Initializer<float>("fc1", fc1, DT.Float, Experts, 2 * Inter, Hidden), "", g.Initializer<float>("fc2", Down, DT.Float, Experts, Hidden, Inter)],
                "moe", "com.microsoft", outputNames: ["Y"],
                attributes: [GraphBuilder.Attr("k", (long)K), GraphBuilder.Attr("activation_type", "swiglu"), GraphBuilder.Attr("normalize_routing_weights", normalize ? 1L : 0L),
                    GraphBuilder.Attr("swiglu_fusion", swigluFusion), GraphBuilder.Attr("activation_alpha", 1.0f), GraphBuilder.Attr("activation_beta", 0.0f),
                    GraphBuilder.Attr("swiglu_limit", 1e30f)]);
            g.Save(path);
        }
        using var session = new InferenceSession(path);
        using var x = OrtValue.CreateTensorValueFromMemory(X, [Rows, Hidden]);
        using var r = OrtValue.CreateTensorValueFromMemory(Logits, [Rows, Experts]);
        using var outputs = session.Run(new RunOptions(), ["X", "R"], [x, r], ["Y"]);
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }

    [Theory]
    [InlineData(true)]  // Mixtral, Qwen3-MoE with norm_topk_prob
    [InlineData(false)] // Qwen3-MoE without
    public void TheCpuOperatorComputesTheFamiliesExperts(bool normalize)
    {
        var expected = Reference(normalize);
        var y = Operator(normalize);
        Assert.True(expected.Max(Math.Abs) > 0.1);
        for (int i = 0; i < y.Length; i++) Assert.True(Math.Abs(y[i] - expected[i]) < 1e-5, $"[{i}] {y[i]} vs {expected[i]}");
    }

    [Fact]
    public void TheCpuOperatorTakesOnlyInterleavedGateAndUp() =>
        Assert.Contains("CPU MoE only supports interleaved SwiGLU format", Assert.ThrowsAny<OnnxRuntimeException>(() => Operator(true, swigluFusion: 2)).Message);
}
