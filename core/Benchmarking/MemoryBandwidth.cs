using System.Numerics;
using System.Runtime.InteropServices;

namespace Sio.Benchmarking;

/// <summary>
/// Measures the machine's main-memory read bandwidth: threads sum disjoint slices of a buffer far
/// larger than the caches; the best of several passes counts.
/// </summary>
public static class MemoryBandwidth
{
    public static double MeasureGBps(int threads = 0, long bytes = 1L << 30, int passes = 5)
    {
        threads = threads > 0 ? threads : Environment.ProcessorCount;
        var buffer = new float[bytes / 4];
        for (long i = 0; i < buffer.Length; i += 1024) buffer[i] = 1f; // touch every page
        double best = 0;
        float sink = 0;
        for (int pass = 0; pass < passes; pass++)
        {
            var partial = new float[threads];
            var sw = System.Diagnostics.Stopwatch.StartNew();
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
            {
                long chunk = buffer.Length / threads;
                var span = buffer.AsSpan((int)(t * chunk), (int)chunk);
                partial[t] = Sum(span);
            });
            double seconds = sw.Elapsed.TotalSeconds;
            sink += partial.Sum();
            best = Math.Max(best, bytes / seconds / 1e9);
        }
        GC.KeepAlive(sink);
        return best;
    }

    static float Sum(ReadOnlySpan<float> s)
    {
        var vs = MemoryMarshal.Cast<float, Vector<float>>(s);
        Vector<float> a = default, b = default, c = default, d = default;
        int i = 0;
        for (; i + 4 <= vs.Length; i += 4) { a += vs[i]; b += vs[i + 1]; c += vs[i + 2]; d += vs[i + 3]; }
        for (; i < vs.Length; i++) a += vs[i];
        return Vector.Sum(a + b + c + d);
    }
}
