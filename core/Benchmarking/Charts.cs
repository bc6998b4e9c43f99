namespace Sio.Benchmarking;

/// <summary>
/// The report's PNG charts (ScottPlot): every variant side by side against the level (concurrency on a log2 axis, or
/// the open-loop request rate), y from zero, the legend beside the plot; and the latency a user sees against the
/// throughput an instance delivers (each point a level), where the front of the best configurations shows.
/// </summary>
public static class Charts
{
    public const string Throughput = "throughput.png", Itl = "itl.png", Price = "price.png", Ttft = "ttft.png", E2e = "e2e.png", Tradeoff = "latency-throughput.png";
    public static readonly string[] All = [Throughput, Ttft, Itl, E2e, Price, Tradeoff];

    public static void Write(string folder, IReadOnlyList<VariantResult> variants)
    {
        Line(Path.Combine(folder, Throughput), variants, "Output throughput", "output tokens/s", l => l.OutputTokensPerSecond);
        Line(Path.Combine(folder, Ttft), variants, "Time to first token (p50)", "ms", l => l.TtftMs.P50);
        Line(Path.Combine(folder, Itl), variants, "Inter-token latency (p50)", "ms", l => l.ItlMs.P50);
        Line(Path.Combine(folder, E2e), variants, "End-to-end latency (p50)", "ms", l => l.E2eMs.P50);
        Line(Path.Combine(folder, Price), variants, "Price from measured throughput", "$ per 1M tokens", l => double.IsFinite(l.PricePerMillionTokens) ? l.PricePerMillionTokens : 0);
        Scatter(Path.Combine(folder, Tradeoff), variants);
    }

    static void Line(string path, IReadOnlyList<VariantResult> variants, string title, string yLabel, Func<LevelResult, double> y)
    {
        var plot = new ScottPlot.Plot();
        bool rates = variants.Any(v => v.Levels.Any(l => l.RequestRate is not null));
        double X(LevelResult l) => rates ? l.RequestRate ?? 0 : Math.Log2(l.Concurrency);
        double top = 0;
        foreach (var v in variants)
        {
            var ys = v.Levels.Select(y).ToArray();
            var s = plot.Add.Scatter(v.Levels.Select(X).ToArray(), ys);
            s.LegendText = v.Name;
            s.MarkerSize = 7;
            s.LineWidth = 2;
            top = Math.Max(top, ys.DefaultIfEmpty(0).Max());
        }
        if (!rates)
        {
            var levels = variants.SelectMany(v => v.Levels.Select(l => l.Concurrency)).Distinct().Order().ToArray();
            plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(levels.Select(c => Math.Log2(c)).ToArray(), levels.Select(c => c.ToString()).ToArray());
        }
        plot.Axes.SetLimitsY(0, top > 0 ? top * 1.1 : 1);
        plot.Title(title);
        plot.XLabel(rates ? "requests per second (open loop)" : "concurrency (log2 scale)");
        plot.YLabel(yLabel);
        plot.ShowLegend(ScottPlot.Edge.Right);
        plot.SavePng(path, 900, 480);
    }

    static void Scatter(string path, IReadOnlyList<VariantResult> variants)
    {
        var plot = new ScottPlot.Plot();
        double right = 0, top = 0;
        foreach (var v in variants)
        {
            var levels = v.Levels.Where(l => l.TpotMs is { P50: > 0 }).OrderBy(l => l.OutputTokensPerSecond).ToArray();
            var xs = levels.Select(l => l.OutputTokensPerSecond).ToArray();
            var ys = levels.Select(l => l.TpotMs!.P50).ToArray();
            var s = plot.Add.Scatter(xs, ys);
            s.LegendText = v.Name;
            s.MarkerSize = 7;
            s.LineWidth = 1;
            right = Math.Max(right, xs.DefaultIfEmpty(0).Max());
            top = Math.Max(top, ys.DefaultIfEmpty(0).Max());
        }
        plot.Axes.SetLimits(0, right > 0 ? right * 1.1 : 1, 0, top > 0 ? top * 1.1 : 1);
        plot.Title("Latency against throughput (each point a level; lower right is better)");
        plot.XLabel("output tokens/s per instance");
        plot.YLabel("time per output token p50, ms");
        plot.ShowLegend(ScottPlot.Edge.Right);
        plot.SavePng(path, 900, 480);
    }
}
