namespace Sio.Benchmarking;

/// <summary>p50, p90 and p99 of a sample.</summary>
public sealed record Percentiles(double P50, double P90, double P99)
{
    public static readonly Percentiles Empty = new(0, 0, 0);

    /// <summary>Linear interpolation between closest ranks (the definition numpy uses by default).</summary>
    public static double At(IReadOnlyList<double> sorted, double q)
    {
        if (sorted.Count == 0) return 0;
        double rank = q * (sorted.Count - 1);
        int lo = (int)Math.Floor(rank), hi = (int)Math.Ceiling(rank);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
    }

    public static Percentiles Of(IEnumerable<double> values)
    {
        var s = values.Order().ToList();
        return s.Count == 0 ? Empty : new Percentiles(At(s, 0.50), At(s, 0.90), At(s, 0.99));
    }
}
