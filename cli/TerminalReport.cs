using System.Text;

namespace Sio.Cli;

/// <summary>
/// A Markdown report (report.md) as a terminal shows it, every line within the terminal's width: headings underlined,
/// paragraphs wrapped, each table drawn with aligned columns (numbers to the right) when it fits, or else each row as
/// a block of "column: value" lines, and image links listed as the chart files they name.
/// </summary>
public static class TerminalReport
{
    /// <summary>The width to render for: the terminal's, else $COLUMNS, else 100.</summary>
    public static int Width()
    {
        try { if (!Console.IsOutputRedirected && Console.WindowWidth > 0) return Console.WindowWidth; }
        catch (IOException) { }
        return int.TryParse(Environment.GetEnvironmentVariable("COLUMNS"), out var c) && c >= 20 ? c : 100;
    }

    public static string Render(string markdown, int width)
    {
        var output = new StringBuilder();
        var lines = markdown.Replace("\r", "").Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            var line = lines[i].TrimEnd();
            if (line.StartsWith('|'))
            {
                var table = lines.Skip(i).TakeWhile(l => l.TrimStart().StartsWith('|')).ToList();
                i += table.Count - 1;
                Table(output, table, width);
            }
            else if (line.StartsWith('#'))
            {
                var title = Plain(line.TrimStart('#').Trim());
                if (output.Length > 0 && !output.ToString().EndsWith("\n\n")) output.AppendLine();
                output.AppendLine(Clip(title, width)).AppendLine(new string(line.StartsWith("##") ? '─' : '═', Math.Min(title.Length, width)));
            }
            else if (line.StartsWith("!["))
                output.AppendLine(Wrap("charts: " + string.Join(", ", line.Split("](").Skip(1).Select(p => p[..p.IndexOf(')')])), width));
            else output.AppendLine(Wrap(Plain(line), width));
        }
        return output.ToString().TrimEnd() + "\n";
    }

    static void Table(StringBuilder output, List<string> rows, int width)
    {
        var cells = rows.Where(r => !IsRule(r)).Select(r => r.Trim().Trim('|').Split('|').Select(c => Plain(c.Trim())).ToArray()).ToList();
        int columns = cells.Max(c => c.Length);
        var widths = Enumerable.Range(0, columns).Select(c => cells.Max(r => c < r.Length ? r[c].Length : 0)).ToArray();
        if (widths.Sum() + 2 * (columns - 1) <= width)
        {
            var numeric = Enumerable.Range(0, columns).Select(c => cells.Skip(1).All(r => c >= r.Length || IsNumber(r[c]))).ToArray();
            for (int r = 0; r < cells.Count; r++)
            {
                output.AppendLine(string.Join("  ", Enumerable.Range(0, columns).Select(c =>
                {
                    var v = c < cells[r].Length ? cells[r][c] : "";
                    return numeric[c] ? v.PadLeft(widths[c]) : v.PadRight(widths[c]);
                })).TrimEnd());
                if (r == 0) output.AppendLine(new string('─', widths.Sum() + 2 * (columns - 1)));
            }
            return;
        }
        // too wide: each row as a block of "column: value" lines
        var header = cells[0];
        int key = Math.Min(header.Max(h => h.Length), width / 2);
        foreach (var row in cells.Skip(1))
        {
            for (int c = 0; c < columns; c++)
            {
                var name = c < header.Length ? header[c] : "";
                var value = c < row.Length ? row[c] : "";
                if (name.Length > key) output.AppendLine(Wrap(name, width)).AppendLine(Wrap(new string(' ', key + 2) + value, width, key + 2)); // a long name on a line of its own
                else output.AppendLine(Wrap($"{name.PadRight(key)}  {value}", width, key + 2));
            }
            output.AppendLine();
        }
    }

    static bool IsRule(string row) => row.Trim().Trim('|').Split('|').All(c => c.Trim().Trim(':').All(ch => ch == '-') && c.Trim().Length > 0);

    static bool IsNumber(string v) => v.Length == 0 || v == "—" || v.Split(" / ").All(p => double.TryParse(p.TrimEnd('%', 'x', 's').TrimStart('$', '+', '-'), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out _));

    static string Plain(string text) => text.Replace("`", "").Replace("**", "");

    static string Clip(string text, int width) => text.Length <= width ? text : text[..Math.Max(0, width - 1)] + "…";

    /// <summary>Wraps at spaces within the width; continuation lines are indented by <paramref name="indent"/>.</summary>
    static string Wrap(string text, int width, int indent = 0)
    {
        if (text.Length <= width) return text;
        var lines = new List<string>();
        var line = new StringBuilder();
        foreach (var word in text.Split(' '))
        {
            if (line.Length > 0 && line.Length + 1 + word.Length > width)
            {
                lines.Add(line.ToString());
                line.Clear().Append(' ', indent);
            }
            if (line.Length > 0 && line.ToString().Trim().Length > 0) line.Append(' ');
            line.Append(word);
            while (line.Length > width) // a word longer than the line
            {
                lines.Add(line.ToString(0, width));
                var rest = line.ToString(width, line.Length - width);
                line.Clear().Append(' ', indent).Append(rest);
            }
        }
        if (line.ToString().Trim().Length > 0) lines.Add(line.ToString());
        return string.Join('\n', lines);
    }
}
