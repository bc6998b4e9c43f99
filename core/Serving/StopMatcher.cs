namespace Sio.Serving;

/// <summary>
/// Cuts streamed text at the first stop sequence, holding back any tail that could still grow into
/// one, so that no part of a stop sequence is ever sent.
/// </summary>
public sealed class StopMatcher(IReadOnlyList<string> stops)
{
    readonly List<string> _stops = stops.Where(s => s.Length > 0).ToList();
    string _held = "";

    public bool Stopped { get; private set; }

    /// <summary>Adds a piece; returns the text that is safe to send now.</summary>
    public string Feed(string piece)
    {
        if (Stopped) return "";
        var text = _held + piece;
        int cut = -1;
        foreach (var s in _stops)
        {
            int at = text.IndexOf(s, StringComparison.Ordinal);
            if (at >= 0 && (cut < 0 || at < cut)) cut = at;
        }
        if (cut >= 0) { Stopped = true; _held = ""; return text[..cut]; }
        int hold = 0;
        foreach (var s in _stops)
            for (int n = Math.Min(s.Length - 1, text.Length); n > hold; n--)
                if (text.EndsWith(s[..n], StringComparison.Ordinal)) { hold = n; break; }
        _held = text[^hold..];
        return text[..^hold];
    }

    /// <summary>What is still held back, at the end of generation.</summary>
    public string Flush()
    {
        var rest = Stopped ? "" : _held;
        _held = "";
        return rest;
    }
}
