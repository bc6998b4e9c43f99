namespace Sio.Models;

/// <summary>
/// config.json's rope_scaling, for the kinds sio builds: "linear" (every frequency divided by the factor), "llama3"
/// (Llama 3.1–3.3: long wavelengths divided by the factor, short ones kept, a smooth blend between, around the
/// original context) and "longrope" (Phi-3/3.5 128k: each pair's frequency divided by its own factor, the short set
/// below the original context and the long set from it on, cos and sin scaled by <see cref="Magnitude"/>). Any other
/// kind is refused by name at import.
/// </summary>
public sealed record RopeScaling(string Type, double Factor, double LowFreqFactor = 1, double HighFreqFactor = 4, int OriginalContext = 8192,
    double[]? ShortFactors = null, double[]? LongFactors = null, double AttentionFactor = 1)
{
    public static readonly string[] Types = ["linear", "llama3", "longrope"];

    /// <summary>How much cos and sin are multiplied by (longrope's attention factor; 1 for the other kinds).</summary>
    public double Magnitude => Type == "longrope" ? AttentionFactor : 1;

    /// <summary>
    /// longrope's attention factor when config.json does not give one, as Hugging Face and llama.cpp compute it:
    /// √(1 + ln(s) / ln(original)) with s = max_position_embeddings / original, and 1 when s ≤ 1.
    /// </summary>
    public static double LongRopeAttentionFactor(int maxPositions, int originalContext)
    {
        double s = (double)maxPositions / originalContext;
        return s <= 1 ? 1 : Math.Sqrt(1 + Math.Log(s) / Math.Log(originalContext));
    }

    /// <summary>
    /// The rotary inverse frequencies theta^(-2i/head) of each of the head/2 pairs, scaled when <paramref name="scaling"/>
    /// says so; for longrope, those of <paramref name="position"/> (the short factors below the original context, the long ones from it on).
    /// </summary>
    public static double[] InverseFrequencies(double theta, int headDim, RopeScaling? scaling, int position = 0)
    {
        var inv = new double[headDim / 2];
        for (int i = 0; i < inv.Length; i++) inv[i] = Math.Pow(theta, -2.0 * i / headDim);
        if (scaling is { Type: "longrope" })
        {
            var factors = position < scaling.OriginalContext ? scaling.ShortFactors! : scaling.LongFactors!;
            for (int i = 0; i < inv.Length; i++) inv[i] /= factors[i];
        }
        else if (scaling is not null) for (int i = 0; i < inv.Length; i++) inv[i] = scaling.Scale(inv[i]);
        return inv;
    }

    double Scale(double frequency)
    {
        if (Type == "linear") return frequency / Factor;
        double wavelength = 2 * Math.PI / frequency;
        double lowFreqWavelength = OriginalContext / LowFreqFactor, highFreqWavelength = OriginalContext / HighFreqFactor;
        if (wavelength < highFreqWavelength) return frequency;
        if (wavelength > lowFreqWavelength) return frequency / Factor;
        double smooth = (OriginalContext / wavelength - LowFreqFactor) / (HighFreqFactor - LowFreqFactor);
        return (1 - smooth) * frequency / Factor + smooth * frequency;
    }

    public bool Equals(RopeScaling? other) =>
        other is not null && Type == other.Type && Factor == other.Factor && LowFreqFactor == other.LowFreqFactor
        && HighFreqFactor == other.HighFreqFactor && OriginalContext == other.OriginalContext && AttentionFactor == other.AttentionFactor
        && SameFactors(ShortFactors, other.ShortFactors) && SameFactors(LongFactors, other.LongFactors);

    public override int GetHashCode() => HashCode.Combine(Type, Factor, OriginalContext, AttentionFactor, ShortFactors?.Length ?? -1);

    static bool SameFactors(double[]? a, double[]? b) => a is null ? b is null : b is not null && a.AsSpan().SequenceEqual(b);
}
