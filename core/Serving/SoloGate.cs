namespace Sio.Serving;

/// <summary>
/// Whether a request alone on the engine should decode with the draft model: tokens per millisecond of whole
/// requests decoded alone, with and without it (each tried first, the loser re-tried now and then).
/// </summary>
sealed class SoloGate
{
    readonly double[] _tokens = new double[2], _ms = new double[2];
    readonly int[] _n = new int[2];
    int _since;

    public bool Choose()
    {
        if (_n[1] < 2) return true;
        if (_n[0] < 2) return false;
        bool soloWins = _tokens[1] / _ms[1] >= _tokens[0] / _ms[0];
        return ++_since % 32 == 0 ? !soloWins : soloWins; // the loser is re-tried now and then: acceptance can change
    }

    public void Observe(bool usedSolo, int tokens, double ms)
    {
        int a = usedSolo ? 1 : 0;
        _n[a]++;
        _tokens[a] = _tokens[a] * 0.9 + tokens;
        _ms[a] = _ms[a] * 0.9 + ms;
    }
}
