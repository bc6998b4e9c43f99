namespace Sio.Generation;

enum JsonMode : byte { Value, ObjectFirstKey, ObjectKey, Colon, CommaOrEnd, String, Escape, Unicode, NumberSign, NumberZero, NumberInt, NumberDot, NumberFrac, NumberExp, NumberExpSign, NumberExpDigits, Literal, Done }

/// <summary>The JSON parser's whole state: a mode, and the open containers as bits (1: object, 0: array), at most 64 deep.</summary>
struct JsonState
{
    public JsonMode Mode;
    public byte Depth;
    public ulong Containers;
    public bool InKey;        // the string being read is an object key
    public byte Pending;      // Unicode: hex digits left; Literal: letters left
    public byte LiteralIndex; // which literal (true, false, null) and where in it
    const string Literals = "true\0false\0null";

    public bool ObjectOnly;   // json_object: the top value must be an object

    public static JsonState Begin(bool objectOnly) => new() { Mode = JsonMode.Value, ObjectOnly = objectOnly };

    public readonly bool Same(in JsonState o) =>
        Mode == o.Mode && Depth == o.Depth && Containers == o.Containers && InKey == o.InKey && Pending == o.Pending
        && LiteralIndex == o.LiteralIndex && ObjectOnly == o.ObjectOnly && _emptyArray == o._emptyArray;

    /// <summary>A number at the top level is complete here, though the next byte could still continue it.</summary>
    public readonly bool EndsHere => Depth == 0 && Mode is JsonMode.NumberZero or JsonMode.NumberInt or JsonMode.NumberFrac or JsonMode.NumberExpDigits;

    bool InObject => Depth > 0 && ((Containers >> (Depth - 1)) & 1) == 1;

    /// <summary>The fewest bytes that complete the object from here.</summary>
    public readonly int CloseCost => Mode switch
    {
        JsonMode.Done => 0,
        JsonMode.Value => Depth == 0 && ObjectOnly ? 2 : 1, // "{}" for json_object; "0" otherwise
        JsonMode.ObjectFirstKey => 0,
        JsonMode.ObjectKey => 4,                         // "":0
        JsonMode.Colon => 2,                             // :0
        JsonMode.String => InKey ? 3 : 1,                // ":0 after a key; the quote after a value
        JsonMode.Escape => 1 + (InKey ? 3 : 1),
        JsonMode.Unicode => Pending + (InKey ? 3 : 1),
        JsonMode.NumberSign or JsonMode.NumberDot or JsonMode.NumberExp or JsonMode.NumberExpSign => 1,
        JsonMode.Literal => Pending,
        _ => 0,
    } + Depth;

    public bool Advance(byte b)
    {
        bool ws = b is (byte)' ' or (byte)'\n' or (byte)'\t' or (byte)'\r';
        switch (Mode)
        {
            case JsonMode.Done: return ws;
            case JsonMode.Value:
                if (ws) return true;
                if (Depth == 0 && ObjectOnly) return b == (byte)'{' && Open(true);
                return StartValue(b);
            case JsonMode.ObjectFirstKey:
                if (ws) return true;
                if (b == (byte)'}') return Close(true);
                return b == (byte)'"' && StartString(key: true);
            case JsonMode.ObjectKey:
                if (ws) return true;
                return b == (byte)'"' && StartString(key: true);
            case JsonMode.Colon:
                if (ws) return true;
                if (b != (byte)':') return false;
                Mode = JsonMode.Value;
                return true;
            case JsonMode.CommaOrEnd: return AfterValue(b, ws);
            case JsonMode.String:
                if (b == (byte)'"') { EndValue(key: InKey); return true; }
                if (b == (byte)'\\') { Mode = JsonMode.Escape; return true; }
                return b >= 0x20;
            case JsonMode.Escape:
                if (b == (byte)'u') { Mode = JsonMode.Unicode; Pending = 4; return true; }
                if (b is (byte)'"' or (byte)'\\' or (byte)'/' or (byte)'b' or (byte)'f' or (byte)'n' or (byte)'r' or (byte)'t') { Mode = JsonMode.String; return true; }
                return false;
            case JsonMode.Unicode:
                if (!IsHex(b)) return false;
                if (--Pending == 0) Mode = JsonMode.String;
                return true;
            case JsonMode.Literal:
                if (b != (byte)Literals[LiteralIndex]) return false;
                LiteralIndex++;
                if (--Pending == 0) EndValue(key: false);
                return true;
            default: return Number(b, ws);
        }
    }

    bool StartValue(byte b)
    {
        switch (b)
        {
            case (byte)'{': return Open(true);
            case (byte)'[': return Open(false);
            case (byte)'"': return StartString(key: false);
            case (byte)'-': Mode = JsonMode.NumberSign; return true;
            case (byte)'0': Mode = JsonMode.NumberZero; return true;
            case >= (byte)'1' and <= (byte)'9': Mode = JsonMode.NumberInt; return true;
            case (byte)'t': Mode = JsonMode.Literal; LiteralIndex = 1; Pending = 3; return true;
            case (byte)'f': Mode = JsonMode.Literal; LiteralIndex = 6; Pending = 4; return true;
            case (byte)'n': Mode = JsonMode.Literal; LiteralIndex = 12; Pending = 3; return true;
            case (byte)']' when Mode == JsonMode.Value && !InObject && _emptyArray: return Close(false);
            default: return false;
        }
    }

    bool _emptyArray; // directly after '[': ']' may close it

    bool Number(byte b, bool ws)
    {
        bool digit = b is >= (byte)'0' and <= (byte)'9';
        switch (Mode)
        {
            case JsonMode.NumberSign:
                if (b == (byte)'0') { Mode = JsonMode.NumberZero; return true; }
                if (digit) { Mode = JsonMode.NumberInt; return true; }
                return false;
            case JsonMode.NumberInt when digit: return true;
            case JsonMode.NumberZero or JsonMode.NumberInt when b == (byte)'.': Mode = JsonMode.NumberDot; return true;
            case JsonMode.NumberZero or JsonMode.NumberInt or JsonMode.NumberFrac when b is (byte)'e' or (byte)'E': Mode = JsonMode.NumberExp; return true;
            case JsonMode.NumberDot or JsonMode.NumberFrac when digit: Mode = JsonMode.NumberFrac; return true;
            case JsonMode.NumberExp when b is (byte)'+' or (byte)'-': Mode = JsonMode.NumberExpSign; return true;
            case JsonMode.NumberExp or JsonMode.NumberExpSign or JsonMode.NumberExpDigits when digit: Mode = JsonMode.NumberExpDigits; return true;
            case JsonMode.NumberZero or JsonMode.NumberInt or JsonMode.NumberFrac or JsonMode.NumberExpDigits:
                EndValue(key: false); // the number ended: the byte belongs to what follows it
                return AfterValue(b, ws);
            default: return false;
        }
    }

    bool AfterValue(byte b, bool ws)
    {
        if (ws) return true;
        if (b == (byte)',') { Mode = InObject ? JsonMode.ObjectKey : JsonMode.Value; _emptyArray = false; return Depth > 0; }
        if (b == (byte)'}') return InObject && Close(true);
        if (b == (byte)']') return Depth > 0 && !InObject && Close(false);
        return false;
    }

    bool Open(bool isObject)
    {
        if (Depth >= 64) return false;
        if (isObject) Containers |= 1UL << Depth; else Containers &= ~(1UL << Depth);
        Depth++;
        Mode = isObject ? JsonMode.ObjectFirstKey : JsonMode.Value;
        _emptyArray = !isObject;
        return true;
    }

    bool Close(bool isObject)
    {
        if (Depth == 0 || InObject != isObject) return false;
        Depth--;
        _emptyArray = false;
        Mode = Depth == 0 ? JsonMode.Done : JsonMode.CommaOrEnd;
        return true;
    }

    bool StartString(bool key)
    {
        Mode = JsonMode.String;
        InKey = key;
        _emptyArray = false;
        return true;
    }

    void EndValue(bool key)
    {
        _emptyArray = false;
        Mode = key ? JsonMode.Colon : Depth == 0 ? JsonMode.Done : JsonMode.CommaOrEnd;
        InKey = false;
    }

    static bool IsHex(byte b) => b is >= (byte)'0' and <= (byte)'9' or >= (byte)'a' and <= (byte)'f' or >= (byte)'A' and <= (byte)'F';
}
