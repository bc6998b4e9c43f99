using System.Runtime.CompilerServices;
using Sio.Tokenization;

namespace Sio.Generation;

/// <summary>
/// Constrained decoding to a <see cref="JsonGrammar"/> (OpenAI's response_format json_object or json_schema, or a forced
/// tool call): before each token, every token whose bytes would not keep the output a prefix of the grammar is masked
/// out, over the model's real vocabulary (byte-level and byte-fallback tokens included); the end-of-turn tokens are
/// allowed only once the output is complete. So that it always completes, once the tokens left are no more than the
/// bytes still needed to close it, only tokens that bring it closer to closing are allowed. The parser is a byte-level
/// pushdown automaton whose state is a small struct (<see cref="JsonCursor"/>), so trying a token costs no allocation
/// unless the token opens a container of a schema.
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
    JsonCursor _state;
    /// <summary>Masks of recent states (each token's close cost after it, −1 when it cannot come next): inside a string the
    /// state repeats token after token, so the vocabulary is walked once per state, not once per token.</summary>
    List<(JsonCursor State, int[] Costs)> _recent = [];
    const int Remembered = 4;

    public JsonConstraint(Tokenizer tokenizer, IEnumerable<int> stopTokens, int maxTokens, JsonGrammar grammar)
    {
        _state = new JsonCursor(grammar);
        var vocabulary = Vocabularies.GetValue(tokenizer, t => new Vocabulary(
            [.. Enumerable.Range(0, t.VocabSize).Select(i => t.TokenBytes(i, -1).ToArray())], [.. Enumerable.Range(0, t.VocabSize).Select(t.IsSpecial)]));
        (_tokens, _special) = (vocabulary.Bytes, vocabulary.Special);
        _stop = new bool[_tokens.Length];
        foreach (var s in stopTokens) if ((uint)s < (uint)_stop.Length) _hasStop = _stop[s] = true;
        _left = maxTokens;
        if (_left < _state.CloseCost) throw new SioException($"max_tokens {maxTokens} is too few for {grammar.Name} (at least {_state.CloseCost})");
    }

    /// <summary>A copy that can be advanced along a draft without moving this one.</summary>
    public JsonConstraint Fork() => (JsonConstraint)MemberwiseClone(); // the remembered masks stay shared: they depend on the state only

    /// <summary>Whether the output so far is complete.</summary>
    public bool Complete => _state.Done;

    /// <summary>Sets the logits of every token that may not come next to −∞.</summary>
    /// <remarks>A token may come next if it keeps the output a valid prefix whose closing still fits in the tokens left
    /// after it (so the output always completes within max_tokens: every byte of a closing is at worst a token of its own).</remarks>
    public void Mask(Span<float> logits)
    {
        bool any = false;
        if (_state.Done)
        {
            for (int i = 0; i < logits.Length; i++)
            {
                bool ok = i < _tokens.Length && (_stop[i] || (!_hasStop && IsWhitespace(_tokens[i])));
                if (!ok) logits[i] = float.NegativeInfinity;
                any |= ok;
            }
        }
        else
        {
            var costs = Costs();
            for (int i = 0; i < logits.Length; i++)
            {
                bool ok = i < costs.Length && costs[i] >= 0 && costs[i] <= _left - 1;
                if (!ok) logits[i] = float.NegativeInfinity;
                any |= ok;
            }
        }
        if (!any) throw new SioException("json output: no token of this vocabulary can continue the output");
    }

    /// <summary>Each token's close cost after it from the current state (−1: it cannot come next), remembered per state.</summary>
    int[] Costs()
    {
        foreach (var (state, known) in _recent)
            if (state.SameAs(_state)) return known;
        var costs = new int[_tokens.Length];
        for (int t = 0; t < costs.Length; t++)
        {
            costs[t] = -1;
            if (_special[t] || _tokens[t].Length == 0) continue;
            var s = _state;
            bool ok = true;
            foreach (var b in _tokens[t]) if (!(ok = s.Advance(b))) break;
            if (ok) costs[t] = s.CloseCost;
        }
        if (_recent.Count == Remembered) _recent.RemoveAt(0);
        _recent.Add((_state, costs));
        return costs;
    }

    static bool IsWhitespace(byte[] bytes) => bytes.Length > 0 && bytes.All(b => b is (byte)' ' or (byte)'\n' or (byte)'\t' or (byte)'\r');

    /// <summary>The token the request emitted.</summary>
    public void Advance(int token)
    {
        _left--;
        if (_stop[token] || (uint)token >= (uint)_tokens.Length) return;
        if (_state.Done && IsWhitespace(_tokens[token])) return; // without stop tokens (ignore_eos), whitespace pads a complete output
        foreach (var b in _tokens[token])
            if (!_state.Advance(b)) throw new InvalidOperationException($"token {token} does not continue the constrained output");
    }
}

