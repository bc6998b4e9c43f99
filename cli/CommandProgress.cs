using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Sio.Cli;

/// <summary>
/// A long command's progress on stderr. Messages are "phase N/M[: detail]" (or free text). In a terminal: one line
/// redrawn in place with a bar, the percentage, elapsed time and an ETA from the phase's rate so far. Elsewhere (CI
/// logs, pipes): a plain line when a phase starts, at every 10 %, and when the command ends, so logs show progress
/// without carriage returns. Reports arrive on any thread; they are written in order, at most 10 redraws a second.
/// </summary>
public sealed partial class CommandProgress(string command, TextWriter error, bool terminal) : IProgress<string>
{
    readonly Stopwatch _total = Stopwatch.StartNew();
    readonly Stopwatch _phaseClock = new();
    readonly object _gate = new();
    string _phase = "";
    int _lastDecile = -1;
    long _lastDraw = -1000;
    bool _drawn;

    [GeneratedRegex(@"^(?<phase>.*?)\s*(?<done>\d+)/(?<total>\d+)(?<rest>.*)$")]
    private static partial Regex Counter();

    public void Report(string message)
    {
        lock (_gate)
        {
            var m = Counter().Match(message);
            string phase = m.Success ? m.Groups["phase"].Value.TrimEnd(':', ' ') : message;
            if (phase != _phase) { _phase = phase; _phaseClock.Restart(); _lastDecile = -1; if (!terminal) error.WriteLine($"{command}: {message}"); }
            if (!m.Success) { if (terminal) Draw(message, null); return; }
            long done = long.Parse(m.Groups["done"].Value), total = long.Parse(m.Groups["total"].Value);
            double fraction = total > 0 ? Math.Clamp((double)done / total, 0, 1) : 0;
            if (terminal) Draw(message, fraction);
            else if ((int)(fraction * 10) is var decile && decile > _lastDecile && done > 0)
            {
                _lastDecile = decile;
                error.WriteLine($"{command}: {phase} {fraction:P0} ({done}/{total}), {Elapsed(_phaseClock.Elapsed)}{Eta(fraction)}");
            }
        }
    }

    void Draw(string message, double? fraction)
    {
        long now = _total.ElapsedMilliseconds;
        if (fraction is not 1.0 && now - _lastDraw < 100) return;
        _lastDraw = now;
        int width = Math.Max(40, SafeWidth() - 1);
        string bar = fraction is double f ? $"[{new string('#', (int)(f * 20)).PadRight(20, '-')}] {f,4:P0} " : "";
        // the numbers first, the message last: a narrow terminal cuts the message, never the ETA
        string line = $"{command}: {bar}{Elapsed(_total.Elapsed)}{(fraction is double g ? Eta(g) : "")}  {message}";
        if (line.Length > width) line = line[..(width - 1)] + "…";
        error.Write($"\r{line}\u001b[K");
        _drawn = true;
    }

    string Eta(double fraction)
    {
        if (fraction <= 0.02 || fraction >= 1) return "";
        var left = TimeSpan.FromSeconds(_phaseClock.Elapsed.TotalSeconds * (1 - fraction) / fraction);
        return $", ETA {Elapsed(left)}";
    }

    static string Elapsed(TimeSpan t) => t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:00}m" : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m{t.Seconds:00}s" : $"{t.TotalSeconds:F1}s";

    static int SafeWidth()
    {
        try { return Console.WindowWidth > 0 ? Console.WindowWidth : 100; }
        catch (IOException) { return 100; }
    }

    /// <summary>The command ended: clear the line (terminal) or say how long it took (logs).</summary>
    public void End()
    {
        lock (_gate)
        {
            if (terminal) { if (_drawn) error.Write("\r\u001b[K"); }
            else if (_phase.Length > 0) error.WriteLine($"{command}: done in {Elapsed(_total.Elapsed)}");
        }
    }
}
