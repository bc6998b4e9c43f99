using System.Diagnostics;
using Sio.Cli;

namespace Sio.Tests;

/// <summary>What a person sees in a terminal: the report fitted to the terminal's width, and a real `sio optimize`
/// under a pseudo-terminal (util-linux `script`) printing its steps with their durations and the final report.</summary>
public class TerminalTests
{
    const string Report = """
        # sio benchmark: model

        Machine: AMD EPYC, 2 cores, X64. Dataset: `orca.jsonl` (sha256 29bce7ff0db4…): 25 prompts used, 0 rows unusable, 175 outside 500–1000 tokens.

        ## model

        | concurrency | requests | TTFT p50 / p90 / p99 ms | output tok/s | $/1M tokens | acceptance |
        |---|---|---|---|---|---|
        | 1 | 16 | 608.9 / 781.6 / 1089.0 | 94.2 | 0.0497 | — |
        | 8 | 16 | 6096.2 / 6998.9 / 7369.0 | 94.4 | 0.0459 | 71 % |

        ![throughput](throughput.png) ![ITL](itl.png)
        """;

    static readonly string[] Cells = ["608.9 / 781.6 / 1089.0", "6096.2 / 6998.9 / 7369.0", "94.2", "0.0459", "71 %", "output tok/s", "TTFT p50 / p90 / p99 ms"];

    [Theory]
    [InlineData(200)]
    [InlineData(80)]
    [InlineData(40)]
    public void TheReportFitsTheWidthAndKeepsEveryValue(int width)
    {
        var text = TerminalReport.Render(Report, width);
        Assert.All(text.Split('\n'), l => Assert.True(l.Length <= width, $"{l.Length} > {width}: {l}"));
        var flowing = System.Text.RegularExpressions.Regex.Replace(text, @"\s+", " "); // wrapped lines joined
        foreach (var cell in Cells) Assert.Contains(cell, flowing);
        Assert.DoesNotContain("|", text);
        Assert.DoesNotContain("`", text);
        Assert.Contains("charts: throughput.png, itl.png", text);
        var header = text.Split('\n').FirstOrDefault(l => l.StartsWith("concurrency  requests"));
        if (width >= 100)
        {
            Assert.NotNull(header); // a table: one header line, a rule, a line per row with numbers aligned right
            var rows = text.Split('\n').SkipWhile(l => l != header).Skip(2).Take(2).ToList();
            Assert.Equal(rows[0].Length, rows[1].Length);
            Assert.EndsWith("—", rows[0].TrimEnd());
        }
        else
        {
            Assert.Null(header); // too narrow: each row a block of "column  value" lines
            Assert.Contains(text.Split('\n'), l => l.StartsWith("concurrency") && l.TrimEnd().EndsWith(" 8"));
        }
    }

    [Fact]
    public async Task OptimizeInATerminalShowsEachStepWithItsDurationAndATableThatFits()
    {
        var root = TestPaths.TempDir("pty");
        var sio = Path.Combine(AppContext.BaseDirectory, "sio.dll");
        var command = $"stty cols 90 rows 40; dotnet {sio} optimize {TestPaths.Stories260K} --dataset {TestPaths.TinyStoriesDev} --recipe rtn-int4 " +
            $"--gate max-perplexity-increase=1000,min-speedup=0.05 --concurrency 1 --requests 2 --max-new-tokens 8 --store {root}/store --work-dir {root}/work --out {root}/out";
        var info = new ProcessStartInfo("script", ["-qec", command, "/dev/null"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        info.Environment.Remove("COLUMNS");
        using var p = Process.Start(info)!;
        var output = p.StandardOutput.ReadToEndAsync();
        Assert.True(p.WaitForExit(TimeSpan.FromMinutes(3)), "sio optimize did not finish");
        var screen = (await output).Replace("\r\n", "\n");
        Assert.Equal(0, p.ExitCode);
        // what the terminal shows after each carriage return: every piece within the 90 columns
        var shown = screen.Split('\n').SelectMany(l => l.Split('\r')).Select(l => System.Text.RegularExpressions.Regex.Replace(l, @"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]", "")).ToList();
        // a path or a command on a line of its own is never wrapped (it is copied whole); every other line fits
        var copyable = new System.Text.RegularExpressions.Regex(@"^  (sio serve )?/\S+( --speculative \S+)?$");
        Assert.All(shown.Where(l => !copyable.IsMatch(l)), l => Assert.True(l.Length <= 90, $"{l.Length} columns: {l}"));
        foreach (var (n, step) in new[] { (1, "validate"), (2, "import"), (3, "quantize"), (4, "benchmark"), (5, "gate"), (6, "publish"), (7, "deploy") })
            Assert.Contains(shown, l => System.Text.RegularExpressions.Regex.IsMatch(l, $@"^\[{n}/7\] {step}: done in \d+\.\d s$"));
        Assert.Contains(shown, l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^variant\s+rtn-int4$"));
        Assert.Contains(shown, l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^output tok/s\s+\d+(\.\d+)?$"));
        var serveIt = shown.FindIndex(l => l == "serve it:");
        Assert.True(serveIt > 0 && shown[serveIt + 1] == $"  sio serve {root}/out/model", "the serve command follows 'serve it:' on a line of its own");
        Assert.DoesNotContain(shown, l => l.TrimStart().StartsWith('|'));
        Directory.Delete(root, true);
    }
}
