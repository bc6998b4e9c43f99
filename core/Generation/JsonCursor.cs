namespace Sio.Generation;

/// <summary>
/// Where a constrained output stands in its <see cref="JsonGrammar"/>: the node being written, how far into it, and
/// the containers around it (an immutable chain, so copying a cursor to try a token copies a few words).
/// <see cref="CloseCost"/> is the fewest bytes that complete the whole output from here.
/// </summary>
internal struct JsonCursor
{
    const int MaxDepth = 64;
    JsonNodeKind _node;
    JsonFrame? _parent;
    int _phase, _index, _matched;
    JsonState _any;

    public JsonCursor(JsonGrammar grammar)
    {
        _node = grammar.Root;
        Enter(grammar.Root);
    }

    /// <summary>The whole output is written.</summary>
    public bool Done { readonly get; private set; }

    /// <summary>Whether two cursors stand in the same place (so every token has the same effect from both).</summary>
    public readonly bool SameAs(in JsonCursor other) =>
        ReferenceEquals(_node, other._node) && ReferenceEquals(_parent, other._parent) && _phase == other._phase && _index == other._index
        && _matched == other._matched && Done == other.Done && _any.Same(other._any);

    public readonly int CloseCost => Done ? 0 : LeafCost() + (_parent?.Cost ?? 0);

    /// <summary>Takes the next byte; false (and the cursor is then unusable) if the output cannot continue with it.</summary>
    public bool Advance(byte b)
    {
        while (!Done)
        {
            switch (Step(b))
            {
                case StepResult.Consumed: return true;
                case StepResult.Ended: Pop(); return true;
                case StepResult.EndedBefore: Pop(); continue; // the value ended just before b: its container reads b
                default: return false;
            }
        }
        return false;
    }

    enum StepResult : byte { Consumed, Ended, EndedBefore, Rejected }

    void Enter(JsonNodeKind node)
    {
        _node = node;
        (_phase, _index, _matched) = (0, 0, 0);
        if (node is AnyValueNode any) _any = JsonState.Begin(any.ObjectOnly);
    }

    /// <summary>Starts writing <paramref name="child"/> inside the current node, which resumes at <paramref name="resume"/> after it.</summary>
    StepResult Descend(JsonNodeKind child, int resume, byte? first)
    {
        if ((_parent?.Depth ?? 0) >= MaxDepth) return StepResult.Rejected;
        _parent = new JsonFrame(_node, resume, _parent);
        Enter(child);
        return first is byte b ? Step(b) : StepResult.Consumed;
    }

    void Pop()
    {
        if (_parent is not { } frame) { Done = true; return; }
        _node = frame.Node;
        _parent = frame.Parent;
        (_phase, _index, _matched) = (2, frame.Index, 0); // object, array, tool call: "after a value"
    }

    StepResult Step(byte b) => _node switch
    {
        ObjectNode o => ObjectStep(o, b),
        ArrayNode a => ArrayStep(a, b),
        StringNode => StringStep(b),
        NumberNode n => NumberStep(n, b),
        LiteralsNode l => LiteralStep(l.Values, b),
        UnionNode u => u.Options.FirstOrDefault(o => o.Starts(b)) is { } option ? Switch(option, b) : StepResult.Rejected,
        PrefixedNode p => PrefixedStep(p, b),
        _ => AnyStep(b),
    };

    StepResult Switch(JsonNodeKind option, byte b)
    {
        Enter(option);
        return Step(b);
    }

    StepResult ObjectStep(ObjectNode o, byte b)
    {
        int n = o.Properties.Length;
        switch (_phase)
        {
            case 0: return b == (byte)'{' ? Go(1, 0) : StepResult.Rejected;
            case 1 or 2 when b == (byte)'}': return o.NextRequired[_index] == n ? StepResult.Ended : StepResult.Rejected;
            case 2: return b == (byte)',' && _index < n ? Go(3, _index) : StepResult.Rejected;
            case 1 or 3:
                for (int j = _index; j <= Math.Min(o.NextRequired[_index], n - 1); j++)
                    if (o.Properties[j].Key[0] == b) { (_phase, _index, _matched) = (4, j, 1); return KeyWritten(o); }
                return StepResult.Rejected;
            default:
                var key = o.Properties[_index].Key;
                for (int j = _index; j <= Math.Min(o.NextRequired[_index], n - 1); j++)
                {
                    var other = o.Properties[j].Key;
                    if (other.Length > _matched && other[_matched] == b && other.AsSpan(0, _matched).SequenceEqual(key.AsSpan(0, _matched)))
                    {
                        (_index, _matched) = (j, _matched + 1);
                        return KeyWritten(o);
                    }
                }
                return StepResult.Rejected;
        }
    }

    StepResult KeyWritten(ObjectNode o) =>
        _matched == o.Properties[_index].Key.Length ? Descend(o.Properties[_index].Value, _index + 1, null) : StepResult.Consumed;

    StepResult ArrayStep(ArrayNode a, byte b) => _phase switch
    {
        0 => b == (byte)'[' ? Go(1, 0) : StepResult.Rejected,
        1 when b == (byte)']' => a.MinItems == 0 ? StepResult.Ended : StepResult.Rejected,
        1 or 3 => a.MaxItems > _index && a.Item.Starts(b) ? Descend(a.Item, _index + 1, b) : StepResult.Rejected,
        _ when b == (byte)']' => _index >= a.MinItems ? StepResult.Ended : StepResult.Rejected,
        _ => b == (byte)',' && _index < a.MaxItems ? Go(3, _index) : StepResult.Rejected,
    };

    StepResult StringStep(byte b)
    {
        switch (_phase)
        {
            case 0: return b == (byte)'"' ? Go(1, 0) : StepResult.Rejected;
            case 1:
                if (b == (byte)'"') return StepResult.Ended;
                if (b == (byte)'\\') return Go(2, 0);
                return b >= 0x20 ? StepResult.Consumed : StepResult.Rejected;
            case 2:
                if (b == (byte)'u') { _matched = 4; return Go(3, 0); }
                return b is (byte)'"' or (byte)'\\' or (byte)'/' or (byte)'b' or (byte)'f' or (byte)'n' or (byte)'r' or (byte)'t' ? Go(1, 0) : StepResult.Rejected;
            default:
                if (!(b is >= (byte)'0' and <= (byte)'9' or >= (byte)'a' and <= (byte)'f' or >= (byte)'A' and <= (byte)'F')) return StepResult.Rejected;
                if (--_matched == 0) _phase = 1;
                return StepResult.Consumed;
        }
    }

    StepResult NumberStep(NumberNode n, byte b)
    {
        bool digit = b is >= (byte)'0' and <= (byte)'9';
        var mode = (JsonMode)_phase;
        JsonMode? next = mode switch
        {
            JsonMode.Value => b == (byte)'-' ? JsonMode.NumberSign : b == (byte)'0' ? JsonMode.NumberZero : digit ? JsonMode.NumberInt : null,
            JsonMode.NumberSign => b == (byte)'0' ? JsonMode.NumberZero : digit ? JsonMode.NumberInt : null,
            JsonMode.NumberInt when digit => JsonMode.NumberInt,
            JsonMode.NumberZero or JsonMode.NumberInt when b == (byte)'.' && !n.Integer => JsonMode.NumberDot,
            JsonMode.NumberZero or JsonMode.NumberInt or JsonMode.NumberFrac when b is (byte)'e' or (byte)'E' && !n.Integer => JsonMode.NumberExp,
            JsonMode.NumberDot or JsonMode.NumberFrac when digit => JsonMode.NumberFrac,
            JsonMode.NumberExp when b is (byte)'+' or (byte)'-' => JsonMode.NumberExpSign,
            JsonMode.NumberExp or JsonMode.NumberExpSign or JsonMode.NumberExpDigits when digit => JsonMode.NumberExpDigits,
            _ => null,
        };
        if (next is JsonMode m) { _phase = (int)m; return StepResult.Consumed; }
        return mode is JsonMode.NumberZero or JsonMode.NumberInt or JsonMode.NumberFrac or JsonMode.NumberExpDigits ? StepResult.EndedBefore : StepResult.Rejected;
    }

    StepResult LiteralStep(byte[][] values, byte b)
    {
        int k = _phase == 0 ? 0 : _matched;
        var current = _phase == 0 ? [] : values[_index];
        for (int j = 0; j < values.Length; j++)
        {
            var v = values[j];
            if (v.Length > k && v[k] == b && v.AsSpan(0, k).SequenceEqual(current.AsSpan(0, k)))
            {
                (_phase, _index, _matched) = (1, j, k + 1);
                return Extendable(values) ? StepResult.Consumed : _matched == v.Length ? StepResult.Ended : StepResult.Consumed;
            }
        }
        return _phase == 1 && _matched == current.Length ? StepResult.EndedBefore : StepResult.Rejected;
    }

    /// <summary>A complete literal that another one continues (enum 1 and 12) ends only when the next byte shows which it is.</summary>
    readonly bool Extendable(byte[][] values)
    {
        var v = values[_index];
        if (_matched < v.Length) return false;
        foreach (var other in values)
            if (other.Length > _matched && other.AsSpan(0, _matched).SequenceEqual(v)) return true;
        return false;
    }

    StepResult PrefixedStep(PrefixedNode p, byte b)
    {
        if (_phase == 2)
        {
            if (p.Suffix[_matched] != b) return StepResult.Rejected;
            return ++_matched == p.Suffix.Length ? StepResult.Ended : StepResult.Consumed;
        }
        int k = _phase == 0 ? 0 : _matched;
        var current = p.Options[_phase == 0 ? 0 : _index].Prefix;
        for (int j = 0; j < p.Options.Length; j++)
        {
            var prefix = p.Options[j].Prefix;
            if (prefix.Length > k && prefix[k] == b && prefix.AsSpan(0, k).SequenceEqual(current.AsSpan(0, k)))
            {
                (_phase, _index, _matched) = (1, j, k + 1);
                return _matched == prefix.Length ? Descend(p.Options[j].Value, j, null) : StepResult.Consumed;
            }
        }
        return StepResult.Rejected;
    }

    StepResult AnyStep(byte b)
    {
        var s = _any;
        if (s.Advance(b))
        {
            _any = s;
            return s.Mode == JsonMode.Done ? StepResult.Ended : StepResult.Consumed;
        }
        return _any.EndsHere ? StepResult.EndedBefore : StepResult.Rejected;
    }

    StepResult Go(int phase, int index)
    {
        (_phase, _index) = (phase, index);
        return StepResult.Consumed;
    }

    readonly int LeafCost() => _node switch
    {
        _ when _phase == 0 && _node is not AnyValueNode and not NumberNode => _node.MinBytes,
        ObjectNode o => _phase switch
        {
            1 or 2 => o.RequiredFrom[_index] + 1,
            3 => (o.NextRequired[_index] < o.Properties.Length ? o.RequiredFrom[_index] - 1 : CheapestOptional(o)) + 1,
            _ => KeyCost(o),
        },
        ArrayNode a => (_phase == 3 ? Math.Max(1, a.MinItems - _index) * (1 + a.Item.MinBytes) - 1 : Math.Max(0, a.MinItems - _index) * (1 + a.Item.MinBytes)) + 1,
        StringNode => _phase switch { 1 => 1, 2 => 2, _ => _matched + 1 },
        NumberNode => (JsonMode)_phase is JsonMode.Value or JsonMode.NumberSign or JsonMode.NumberDot or JsonMode.NumberExp or JsonMode.NumberExpSign ? 1 : 0,
        LiteralsNode l => CheapestLiteral(l),
        PrefixedNode p => _phase == 2 ? p.Suffix.Length - _matched : CheapestPrefix(p) + p.Suffix.Length,
        _ => _any.CloseCost,
    };

    /// <summary>While a key is being matched: the cheapest completion among the keys that still match (not just the first).</summary>
    readonly int KeyCost(ObjectNode o)
    {
        var key = o.Properties[_index].Key;
        int best = SchemaCompiler.Unbounded;
        for (int j = _index; j <= Math.Min(o.NextRequired[_index], o.Properties.Length - 1); j++)
        {
            var p = o.Properties[j];
            if (p.Key.Length >= _matched && p.Key.AsSpan(0, _matched).SequenceEqual(key.AsSpan(0, _matched)))
                best = Math.Min(best, p.Key.Length - _matched + p.Value.MinBytes + o.RequiredFrom[j + 1] + 1);
        }
        return best;
    }

    /// <summary>The cheapest completion among the literals that still match what was written (no delegates: this runs per token tried).</summary>
    readonly int CheapestLiteral(LiteralsNode l)
    {
        int best = SchemaCompiler.Unbounded;
        foreach (var v in l.Values)
            if (Matches(v, l.Values[_index])) best = Math.Min(best, v.Length - _matched);
        return best;
    }

    /// <summary>The cheapest completion among the prefixes that still match, each with its value's shortest form.</summary>
    readonly int CheapestPrefix(PrefixedNode p)
    {
        int best = SchemaCompiler.Unbounded;
        foreach (var (prefix, value) in p.Options)
            if (Matches(prefix, p.Options[_index].Prefix)) best = Math.Min(best, prefix.Length - _matched + value.MinBytes);
        return best;
    }

    readonly bool Matches(byte[] text, byte[] current) => text.Length >= _matched && text.AsSpan(0, _matched).SequenceEqual(current.AsSpan(0, _matched));

    readonly int CheapestOptional(ObjectNode o)
    {
        int best = SchemaCompiler.Unbounded;
        for (int j = _index; j < o.Properties.Length; j++) best = Math.Min(best, o.Properties[j].Key.Length + o.Properties[j].Value.MinBytes);
        return best;
    }
}

/// <summary>A container the cursor is inside: its node, where it resumes, and the bytes it and every container around it still need.</summary>
internal sealed class JsonFrame
{
    public JsonNodeKind Node { get; }
    public int Index { get; }
    public JsonFrame? Parent { get; }
    public int Depth { get; }
    public int Cost { get; }

    public JsonFrame(JsonNodeKind node, int index, JsonFrame? parent)
    {
        (Node, Index, Parent, Depth) = (node, index, parent, (parent?.Depth ?? 0) + 1);
        int own = node switch
        {
            ObjectNode o => o.RequiredFrom[index] + 1,
            ArrayNode a => Math.Max(0, a.MinItems - index) * (1 + a.Item.MinBytes) + 1,
            PrefixedNode p => p.Suffix.Length,
            _ => 0,
        };
        Cost = own + (parent?.Cost ?? 0);
    }
}
