namespace Sio.Benchmarking;

/// <summary>The report's PNG charts (ScottPlot): every variant side by side against concurrency.</summary>
public static class Charts
{
    public const string Throughput = "throughput.png", Itl = "itl.png", Price = "price.png";

    public static void Write(string folder, IReadOnlyList<VariantResult> variants)
    {
        Line(Path.Combine(folder, Throughput), variants, "Output throughput", "output tokens/s", l => l.OutputTokensPerSecond);
        Line(Path.Combine(folder, Itl), variants, "Inter-token latency (p50)", "ms", l => l.ItlMs.P50);
        Line(Path.Combine(folder, Price), variants, "Blended price", "$ per 1M tokens", l => double.IsFinite(l.BlendedPricePerMillionTokens) ? l.BlendedPricePerMillionTokens : 0);
    }

    static void Line(string path, IReadOnlyList<VariantResult> variants, string title, string yLabel, Func<LevelResult, double> y)
    {
        var plot = new ScottPlot.Plot();
        foreach (var v in variants)
        {
            var xs = v.Levels.Select(l => (double)l.Concurrency).ToArray();
            var ys = v.Levels.Select(y).ToArray();
            var s = plot.Add.Scatter(xs, ys);
            s.LegendText = v.Name;
            s.MarkerSize = 7;
            s.LineWidth = 2;
        }
        plot.Title(title);
        plot.XLabel("concurrency");
        plot.YLabel(yLabel);
        plot.ShowLegend();
        plot.SavePng(path, 800, 480);
    }
}
