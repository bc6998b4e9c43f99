namespace Sio.Generation;

/// <summary>How the next token is chosen. Temperature 0 is greedy (argmax).</summary>
public sealed record SamplingOptions
{
    public float Temperature { get; init; }
    /// <summary>Keep only the k most likely tokens; 0 keeps all.</summary>
    public int TopK { get; init; }
    /// <summary>Keep the smallest set of tokens whose probability adds up to p; 1 keeps all.</summary>
    public float TopP { get; init; } = 1f;
    /// <summary>Seed for reproducible sampling; null draws one.</summary>
    public int? Seed { get; init; }

    public bool IsGreedy => Temperature <= 0f;

    public SamplingOptions Validate()
    {
        if (float.IsNaN(Temperature) || Temperature < 0) throw new SioException($"temperature must be ≥ 0, got {Temperature}");
        if (TopK < 0) throw new SioException($"top-k must be ≥ 0, got {TopK}");
        if (!(TopP > 0 && TopP <= 1)) throw new SioException($"top-p must be in (0, 1], got {TopP}");
        return this;
    }
}

/// <summary>Turns logits into a token id.</summary>
public sealed class Sampler
{
    readonly SamplingOptions _options;
    readonly Random _random;
    float[] _probs = [];
    int[] _order = [];

    public Sampler(SamplingOptions options)
    {
        _options = options.Validate();
        _random = options.Seed is int s ? new Random(s) : new Random();
    }

    public SamplingOptions Options => _options;

    public int Sample(ReadOnlySpan<float> logits)
    {
        if (_options.IsGreedy) return ArgMax(logits);
        var p = Distribution(logits);
        return Draw(p);
    }

    /// <summary>
    /// The distribution sampling draws from after temperature, top-k and top-p (zeros outside the
    /// kept set). The span is valid until the next call.
    /// </summary>
    public ReadOnlySpan<float> Distribution(ReadOnlySpan<float> logits)
    {
        int n = logits.Length;
        if (_probs.Length != n) { _probs = new float[n]; _order = new int[n]; }
        float max = float.NegativeInfinity;
        foreach (var l in logits) max = MathF.Max(max, l);
        float t = _options.IsGreedy ? 1f : _options.Temperature;
        double sum = 0;
        for (int i = 0; i < n; i++) { _probs[i] = MathF.Exp((logits[i] - max) / t); sum += _probs[i]; }
        for (int i = 0; i < n; i++) _probs[i] = (float)(_probs[i] / sum);
        bool topK = _options.TopK > 0 && _options.TopK < n;
        bool topP = _options.TopP < 1f;
        if (!topK && !topP) return _probs;

        for (int i = 0; i < n; i++) _order[i] = i;
        var probs = _probs;
        Array.Sort(_order, (a, b) => probs[b].CompareTo(probs[a]) is var c && c != 0 ? c : a.CompareTo(b));
        int keep = topK ? _options.TopK : n;
        if (topP)
        {
            double cum = 0;
            for (int i = 0; i < keep; i++)
            {
                cum += _probs[_order[i]];
                if (cum >= _options.TopP) { keep = i + 1; break; }
            }
        }
        double kept = 0;
        for (int i = 0; i < keep; i++) kept += _probs[_order[i]];
        for (int i = keep; i < n; i++) _probs[_order[i]] = 0f;
        for (int i = 0; i < keep; i++) _probs[_order[i]] = (float)(_probs[_order[i]] / kept);
        return _probs;
    }

    /// <summary>Draws an id from a distribution.</summary>
    public int Draw(ReadOnlySpan<float> p)
    {
        double r = _random.NextDouble();
        double cum = 0;
        int last = 0;
        for (int i = 0; i < p.Length; i++)
        {
            if (p[i] <= 0) continue;
            cum += p[i];
            last = i;
            if (r < cum) return i;
        }
        return last; // rounding left r above the total
    }

    /// <summary>A uniform draw in [0, 1) from this sampler's stream.</summary>
    public double NextUniform() => _random.NextDouble();

    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }
}
