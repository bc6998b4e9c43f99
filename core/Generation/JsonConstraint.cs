using System.Runtime.CompilerServices;
using Sio.Tokenization;

namespace Sio.Generation;

/// <summary>
/// Constrained decoding to one JSON object (OpenAI's response_format json_object): before each token, every token
/// whose bytes would not keep the output a prefix of a valid JSON object is masked out, over the model's real
/// vocabulary (byte-level and byte-fallback tokens included); the end-of-turn tokens are allowed only once the object
/// is complete. So that the object always completes, once the tokens left are no more than the bytes still needed to
/// close it, only tokens that bring it closer to closing are allowed. The parser is a byte-level pushdown automaton
/// whose state is a small struct, so trying a token costs no allocation.
/// </summary>
public sealed class JsonConstraint
{
    /// <summary>A vocabulary as the constraint reads it: each token's bytes, and whether it is special (never JSON text).</summary>
    sealed record Vocabulary(byte[][] Bytes, bool[] Special);
    static readonly ConditionalWeakTable<Tokenizer, Vocabulary> Vocabularies = new();
    readonly byte[][] _tokens;
    readonly bool[] _stop;
    readonly bool[] _special;
    readonly bool _hasStop;
    int _left;
    JsonState _state = JsonState.Start;

    public JsonConstraint(Tokenizer tokenizer, IEnumerable<int> stopTokens, int maxTokens)
    {
        var vocabulary = Vocabularies.GetValue(tokenizer, t => new Vocabulary(
            [.. Enumerable.Range(0, t.VocabSize).Select(i => t.TokenBytes(i, -1).ToArray())], [.. Enumerable.Range(0, t.VocabSize).Select(t.IsSpecial)]));
        (_tokens, _special) = (vocabulary.Bytes, vocabulary.Special);
        _stop = new bool[_tokens.Length];
        foreach (var s in stopTokens) if ((uint)s < (uint)_stop.Length) _hasStop = _stop[s] = true;
        _left = maxTokens;
        if (_left < _state.CloseCost) throw new SioException($"max_tokens {maxTokens} is too few for a JSON object (at least {_state.CloseCost})");
    }

    /// <summary>Whether the output so far is one complete JSON object.</summary>
    public bool Complete => _state.Mode == JsonMode.Done;

    /// <summary>Sets the logits of every token that may not come next to −∞.</summary>
    public void Mask(Span<float> logits)
    {
        bool any = false;
        for (int i = 0; i < logits.Length; i++)
        {
            bool ok = i < _tokens.Length && Allowed(i);
            if (!ok) logits[i] = float.NegativeInfinity;
            any |= ok;
        }
        if (!any) throw new SioException("json output: no token of this vocabulary can continue the JSON object");
    }

    /// <summary>
    /// Whether a token keeps the output a valid prefix whose closing still fits in the tokens left after it (so the
    /// object always completes within max_tokens: every byte of a closing is at worst a token of its own).
    /// </summary>
    bool Allowed(int token)
    {
        if (_state.Mode == JsonMode.Done) return _stop[token] || (!_hasStop && IsWhitespace(_tokens[token]));
        if (_special[token] || _tokens[token].Length == 0) return false;
        var s = _state;
        foreach (var b in _tokens[token]) if (!s.Advance(b)) return false;
        return s.CloseCost <= _left - 1;
    }

    static bool IsWhitespace(byte[] bytes) => bytes.Length > 0 && bytes.All(b => b is (byte)' ' or (byte)'\n' or (byte)'\t' or (byte)'\r');

    /// <summary>The token the request emitted.</summary>
    public void Advance(int token)
    {
        _left--;
        if (_stop[token] || (uint)token >= (uint)_tokens.Length) return;
        foreach (var b in _tokens[token])
            if (!_state.Advance(b)) throw new InvalidOperationException($"token {token} does not continue the JSON object");
    }
}

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

    public static JsonState Start => new() { Mode = JsonMode.Value };

    bool InObject => Depth > 0 && ((Containers >> (Depth - 1)) & 1) == 1;

    /// <summary>The fewest bytes that complete the object from here.</summary>
    public readonly int CloseCost => Mode switch
    {
        JsonMode.Done => 0,
        JsonMode.Value => Depth == 0 ? 2 : 1,          // "{}" at the top; "0" inside
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
                if (Depth == 0) return b == (byte)'{' && Open(true); // json_object: the top value is an object
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
