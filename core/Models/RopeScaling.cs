namespace Sio.Models;

/// <summary>
/// config.json's rope_scaling, for the kinds sio builds: "linear" (every frequency divided by the factor) and "llama3"
/// (Llama 3.1–3.3: long wavelengths divided by the factor, short ones kept, a smooth blend between, around the
/// original context). Any other kind is refused by name at import.
/// </summary>
public sealed record RopeScaling(string Type, double Factor, double LowFreqFactor = 1, double HighFreqFactor = 4, int OriginalContext = 8192)
{
    public static readonly string[] Types = ["linear", "llama3"];

    /// <summary>The rotary inverse frequencies theta^(-2i/head) of each of the head/2 pairs, scaled when <paramref name="scaling"/> says so.</summary>
    public static double[] InverseFrequencies(double theta, int headDim, RopeScaling? scaling)
    {
        var inv = new double[headDim / 2];
        for (int i = 0; i < inv.Length; i++) inv[i] = Math.Pow(theta, -2.0 * i / headDim);
        if (scaling is not null) for (int i = 0; i < inv.Length; i++) inv[i] = scaling.Scale(inv[i]);
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
}
