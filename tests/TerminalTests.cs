using System.Diagnostics;
using Sio.Cli;
using Sio.Models;

namespace Sio.Tests;

/// <summary>What a person sees in a terminal: the report fitted to the terminal's width, and a real `sio optimize`
/// under a pseudo-terminal (util-linux `script`) printing its steps with their durations and the final report, and
/// `sio quantize` drawing its bar with percentage and ETA there, and plain lines per 10 % in a log.</summary>
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
        var (exit, shown) = await InATerminal(command);
        Assert.Equal(0, exit);
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

    [Fact]
    public async Task QuantizeShowsABarWithPercentageAndEtaInATerminalAndPlainLinesInALog()
    {
        var root = TestPaths.TempDir("pty-quantize");
        var model = Path.Combine(root, "model");
        ModelImporter.Import(new ImportRequest { Source = TestPaths.Stories260K }, model);
        var sio = $"dotnet {Path.Combine(AppContext.BaseDirectory, "sio.dll")} quantize {model} --method awq --calibration {TestPaths.TinyStoriesDev}";

        // a terminal: one line redrawn in place, a bar with its percentage, elapsed time and ETA, per phase, up to N/N
        var (exit, shown) = await InATerminal($"stty cols 90 rows 40; {sio} --out {root}/tty");
        Assert.Equal(0, exit);
        var bar = new System.Text.RegularExpressions.Regex(@"^quantize: \[[#-]{20}\] +(\d+) ?% \d+\.\ds(, ETA \d+\.\ds)?  (?<phase>calibration|scale search|quantizing) (?<done>\d+)/(?<total>\d+)");
        var frames = shown.Select(l => bar.Match(l)).Where(m => m.Success).ToList();
        foreach (var phase in new[] { "calibration", "scale search", "quantizing" })
            Assert.Contains(frames, m => m.Groups["phase"].Value == phase && m.Groups["done"].Value == m.Groups["total"].Value); // each phase reaches N/N
        Assert.Contains(frames, m => m.Value.Contains(", ETA "));
        Assert.Equal(35, int.Parse(frames.Last(m => m.Groups["phase"].Value == "quantizing").Groups["total"].Value)); // the linears, not every initializer
        Assert.All(shown.Where(l => l.StartsWith("quantize:")), l => Assert.True(l.Length <= 90, $"{l.Length} columns: {l}")); // the bar never wraps
        Assert.Contains(shown, l => l.StartsWith("awq int4 g32: 35 linears"));

        // a log (stderr not a terminal): plain lines when a phase starts and at every 10 %, with the ETA, then the total
        var info = new ProcessStartInfo("bash", ["-c", $"{sio} --out {root}/log"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(info)!;
        var (stdout, stderr) = (p.StandardOutput.ReadToEndAsync(), p.StandardError.ReadToEndAsync());
        Assert.True(p.WaitForExit(TimeSpan.FromMinutes(2)));
        var log = (await stderr).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.DoesNotContain('\r', await stderr);
        Assert.Contains(log, l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^quantize: quantizing 100 ?% \(35/35\), \d+\.\ds$"));
        Assert.Contains(log, l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^quantize: calibration \d+ ?% \(\d+/64\), \d+\.\ds, ETA \d+\.\ds$"));
        Assert.Matches(@"^quantize: done in \d+\.\ds$", log[^1]);
        Assert.Contains("awq int4 g32: 35 linears", await stdout);
        Directory.Delete(root, true);
    }

    /// <summary>Runs a shell command under a pseudo-terminal (util-linux `script`); what the terminal shows: each line,
    /// split at carriage returns (each redraw), with the escape sequences removed.</summary>
    static async Task<(int Exit, List<string> Shown)> InATerminal(string command)
    {
        var info = new ProcessStartInfo("script", ["-qec", command, "/dev/null"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        info.Environment.Remove("COLUMNS");
        using var p = Process.Start(info)!;
        var output = p.StandardOutput.ReadToEndAsync();
        Assert.True(p.WaitForExit(TimeSpan.FromMinutes(3)), $"{command} did not finish");
        var screen = (await output).Replace("\r\n", "\n");
        return (p.ExitCode, screen.Split('\n').SelectMany(l => l.Split('\r')).Select(l => System.Text.RegularExpressions.Regex.Replace(l, @"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]", "")).ToList());
    }
}
