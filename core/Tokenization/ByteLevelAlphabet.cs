namespace Sio.Tokenization;

/// <summary>
/// GPT-2's reversible byte ↔ character mapping used by byte-level BPE: printable bytes stand for themselves, the
/// others (control characters, space, DEL, the non-printing Latin-1 range) are moved to U+0100 onwards, so every
/// byte sequence is spelled by printable characters ("Ġ" is a space, "Ċ" a newline).
/// </summary>
public static class ByteLevelAlphabet
{
    static readonly char[] ByteToChar = BuildTable();
    static readonly Dictionary<char, byte> CharToByte = ByteToChar.Select((c, b) => (c, (byte)b)).ToDictionary(p => p.c, p => p.Item2);

    static char[] BuildTable()
    {
        var table = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
            table[b] = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) ? (char)b : (char)next++;
        return table;
    }

    /// <summary>The character that spells a byte.</summary>
    public static char Char(byte b) => ByteToChar[b];

    /// <summary>The UTF-8 bytes of a text, spelled in the byte-level alphabet.</summary>
    public static string Spell(ReadOnlySpan<byte> utf8)
    {
        return string.Create(utf8.Length, utf8.ToArray(), (span, bytes) =>
        {
            for (int i = 0; i < bytes.Length; i++) span[i] = ByteToChar[bytes[i]];
        });
    }

    /// <summary>The bytes a byte-level token stands for, or null when a character is outside the alphabet.</summary>
    public static byte[]? Bytes(string token)
    {
        var bytes = new byte[token.Length];
        for (int i = 0; i < token.Length; i++)
            if (CharToByte.TryGetValue(token[i], out var b)) bytes[i] = b;
            else return null;
        return bytes;
    }
}
