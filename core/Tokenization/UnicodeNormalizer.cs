using System.Text;

namespace Sio.Tokenization;

/// <summary>
/// Canonical Unicode normalization (NFC, NFD) from an embedded table (Data/canonical.txt). sio runs with
/// invariant globalization, where <see cref="string.Normalize()"/> leaves text unchanged, and tokenizers such as
/// Qwen's declare an NFC normalizer: this is the one sio applies, identical on every machine.
/// </summary>
public static class UnicodeNormalizer
{
    const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7, LCount = 19, VCount = 21, TCount = 28;
    const int NCount = VCount * TCount, SCount = LCount * NCount;

    static readonly Lazy<Tables> Data = new(Tables.Load);

    /// <summary>Canonical composition (NFC).</summary>
    public static string ToNfc(string text) => IsStable(text) ? text : Compose(Decompose(text));

    /// <summary>Canonical decomposition (NFD).</summary>
    public static string ToNfd(string text) => IsStable(text) ? text : ToText(Decompose(text));

    // Below U+0300 every character is unchanged by NFC and NFD except precomposed Latin-1 letters under NFD;
    // the quick check therefore only skips pure ASCII (and text below U+00C0) for both forms.
    static bool IsStable(string text)
    {
        foreach (var ch in text) if (ch >= 0xC0) return false;
        return true;
    }

    static List<int> Decompose(string text)
    {
        var t = Data.Value;
        var cps = new List<int>(text.Length);
        foreach (var rune in EnumerateRunes(text)) Append(t, rune, cps);
        // canonical ordering: a stable sort of each run of non-starters by combining class
        for (int i = 1; i < cps.Count; i++)
        {
            int c = Ccc(t, cps[i]);
            if (c == 0) continue;
            for (int j = i; j > 0 && Ccc(t, cps[j - 1]) > c; j--) (cps[j - 1], cps[j]) = (cps[j], cps[j - 1]);
        }
        return cps;
    }

    static void Append(Tables t, int cp, List<int> output)
    {
        if (cp >= SBase && cp < SBase + SCount)
        {
            int s = cp - SBase;
            output.Add(LBase + s / NCount);
            output.Add(VBase + s % NCount / TCount);
            if (s % TCount != 0) output.Add(TBase + s % TCount);
            return;
        }
        if (t.Decompositions.TryGetValue(cp, out var parts)) { foreach (var p in parts) Append(t, p, output); return; }
        output.Add(cp);
    }

    static string Compose(List<int> cps)
    {
        var t = Data.Value;
        var result = new List<int>(cps.Count);
        int starter = -1, lastClass = -1;
        foreach (var cp in cps)
        {
            int ccc = Ccc(t, cp);
            if (starter >= 0 && (lastClass < ccc || (lastClass == 0 && result.Count - 1 == starter)) && TryCompose(t, result[starter], cp, out var composed))
            {
                result[starter] = composed;
                continue;
            }
            if (ccc == 0) starter = result.Count;
            lastClass = ccc;
            result.Add(cp);
        }
        return ToText(result);
    }

    static bool TryCompose(Tables t, int a, int b, out int composed)
    {
        if (a >= LBase && a < LBase + LCount && b >= VBase && b < VBase + VCount)
        {
            composed = SBase + ((a - LBase) * VCount + (b - VBase)) * TCount;
            return true;
        }
        if (a >= SBase && a < SBase + SCount && (a - SBase) % TCount == 0 && b > TBase && b < TBase + TCount)
        {
            composed = a + (b - TBase);
            return true;
        }
        return t.Compositions.TryGetValue(((long)a << 21) | (uint)b, out composed);
    }

    static int Ccc(Tables t, int cp) => t.CombiningClasses.TryGetValue(cp, out var c) ? c : 0;

    /// <summary>Code points of a string; a lone surrogate becomes U+FFFD, as UTF-8 encoding would make it.</summary>
    static IEnumerable<int> EnumerateRunes(string text)
    {
        for (int i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                yield return char.ConvertToUtf32(text[i], text[++i]);
            else yield return char.IsSurrogate(text[i]) ? 0xFFFD : text[i];
        }
    }

    static string ToText(List<int> cps)
    {
        var sb = new StringBuilder(cps.Count);
        foreach (var cp in cps) sb.Append(char.ConvertFromUtf32(cp));
        return sb.ToString();
    }

    sealed class Tables
    {
        public readonly Dictionary<int, int> CombiningClasses = new();
        public readonly Dictionary<int, int[]> Decompositions = new();
        public readonly Dictionary<long, int> Compositions = new();

        public static Tables Load()
        {
            var t = new Tables();
            using var stream = typeof(UnicodeNormalizer).Assembly.GetManifestResourceStream("Sio.Tokenization.canonical.txt")
                ?? throw new InvalidOperationException("embedded resource Sio.Tokenization.canonical.txt is missing");
            using var reader = new StreamReader(stream);
            while (reader.ReadLine() is { } line)
            {
                if (line.StartsWith('#')) continue;
                var f = line.Split(' ');
                int Hex(int i) => Convert.ToInt32(f[i], 16);
                switch (f[0])
                {
                    case "ccc": t.CombiningClasses[Hex(1)] = int.Parse(f[2]); break;
                    case "dec": t.Decompositions[Hex(1)] = f.Skip(2).Select(p => Convert.ToInt32(p, 16)).ToArray(); break;
                    case "cmp": t.Compositions[((long)Hex(1) << 21) | (uint)Hex(2)] = Hex(3); break;
                }
            }
            return t;
        }
    }
}
