namespace Sio.Benchmarking;

/// <summary>
/// When the requests of an open-loop level arrive: gaps drawn from a gamma distribution with mean 1/rate and shape
/// <c>burstiness</c> (1: a Poisson process; below 1 burstier, above 1 steadier), as vLLM's benchmark draws them.
/// Seeded, so a rerun sends the same schedule.
/// </summary>
public static class Arrivals
{
    /// <summary>Offsets in seconds from the level's start, one per request, increasing.</summary>
    public static double[] Schedule(double rate, double burstiness, int count, int seed)
    {
        if (!(rate > 0) || double.IsInfinity(rate)) throw new SioException($"--request-rate must be a positive number of requests per second, got {rate}");
        if (!(burstiness > 0) || double.IsInfinity(burstiness)) throw new SioException($"--burstiness must be > 0, got {burstiness}");
        var random = new Random(seed);
        var offsets = new double[count];
        double t = 0, scale = 1 / (rate * burstiness);
        for (int i = 0; i < count; i++) offsets[i] = t += Gamma(random, burstiness) * scale;
        return offsets;
    }

    /// <summary>A gamma(shape, 1) draw (Marsaglia and Tsang; shape below 1 by the boost u^(1/shape)).</summary>
    static double Gamma(Random random, double shape)
    {
        if (shape < 1) return Gamma(random, shape + 1) * Math.Pow(1 - random.NextDouble(), 1 / shape);
        double d = shape - 1.0 / 3, c = 1 / Math.Sqrt(9 * d);
        while (true)
        {
            double x, v;
            do { x = Normal(random); v = 1 + c * x; } while (v <= 0);
            v = v * v * v;
            double u = 1 - random.NextDouble();
            if (Math.Log(u) < 0.5 * x * x + d - d * v + d * Math.Log(v)) return d * v;
        }
    }

    static double Normal(Random random) => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}
