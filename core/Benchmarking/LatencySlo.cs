using System.Globalization;

namespace Sio.Benchmarking;

/// <summary>
/// Latency objectives a request must meet to count towards goodput (vLLM's --goodput): time to first token, time per
/// output token after the first, and end-to-end latency, each in milliseconds, each optional.
/// </summary>
public sealed record LatencySlo(double? TtftMs = null, double? TpotMs = null, double? E2eMs = null)
{
    /// <summary>MLPerf's interactive objectives for Llama 3.1 8B: TTFT 500 ms, TPOT 30 ms.</summary>
    public static readonly LatencySlo Interactive = new(500, 30);

    public bool Met(RequestTiming t) =>
        !(TtftMs is double a && t.TtftMs > a) && !(TpotMs is double b && t.TpotMs is double tp && tp > b) && !(E2eMs is double c && t.E2eMs > c);

    /// <summary>"ttft=500ms,tpot=30ms,e2e=20s": names ttft, tpot and e2e (also written ttft-p99 and so on: a recommendation
    /// holds them at p99); values in ms or s (a bare number is ms).</summary>
    public static LatencySlo Parse(string spec)
    {
        var slo = new LatencySlo();
        foreach (var part in spec.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var kv = part.Split('=', 2, StringSplitOptions.TrimEntries);
            if (kv.Length != 2) throw new SioException($"--slo: '{part}' must be NAME=TIME, e.g. ttft=500ms");
            double ms = Milliseconds(kv[1], part);
            slo = kv[0] switch
            {
                "ttft" or "ttft-p99" => slo with { TtftMs = ms },
                "tpot" or "tpot-p99" => slo with { TpotMs = ms },
                "e2e" or "e2e-p99" => slo with { E2eMs = ms },
                _ => throw new SioException($"--slo: unknown objective '{kv[0]}'; use ttft, tpot or e2e"),
            };
        }
        if (slo == new LatencySlo()) throw new SioException("--slo names no objective; e.g. ttft=500ms,tpot=30ms");
        return slo;
    }

    static double Milliseconds(string value, string part)
    {
        var (number, scale) = value.EndsWith("ms") ? (value[..^2], 1.0) : value.EndsWith('s') ? (value[..^1], 1000.0) : (value, 1.0);
        if (!double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !(v > 0) || double.IsInfinity(v))
            throw new SioException($"--slo: '{part}' needs a positive time, e.g. 500ms or 2s");
        return v * scale;
    }

    public override string ToString() => string.Join(", ", new[] { ("TTFT", TtftMs), ("TPOT", TpotMs), ("E2E", E2eMs) }
        .Where(x => x.Item2 is not null).Select(x => $"{x.Item1} ≤ {x.Item2:0.###} ms"));
}
