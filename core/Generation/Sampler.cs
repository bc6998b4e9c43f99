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
    /// <summary>OpenAI's presence penalty: subtracted once from the logit of every token already generated ([-2, 2]).</summary>
    public float PresencePenalty { get; init; }
    /// <summary>OpenAI's frequency penalty: subtracted from a token's logit once per time it was generated ([-2, 2]).</summary>
    public float FrequencyPenalty { get; init; }
    /// <summary>vLLM's (and transformers') repetition penalty over the prompt and the output: a seen token's positive logit
    /// is divided by it, a negative one multiplied (1: off).</summary>
    public float RepetitionPenalty { get; init; } = 1f;
    /// <summary>OpenAI's logit_bias: added to the named tokens' logits ([-100, 100]; -100 bans a token, 100 all but forces it).</summary>
    public IReadOnlyDictionary<int, float>? LogitBias { get; init; }
    /// <summary>Report each chosen token's log-probability and this many most likely alternatives (null: none).</summary>
    public int? Logprobs { get; init; }
    /// <summary>The output follows this grammar (response_format json_object or json_schema, a forced tool call), by <see cref="JsonConstraint"/>.</summary>
    public JsonGrammar? Json { get; init; }

    public bool IsGreedy => Temperature <= 0f;
    /// <summary>Penalties or biases change the logits before choosing, so the token depends on more than the model's logits.</summary>
    public bool ShapesLogits => PresencePenalty != 0 || FrequencyPenalty != 0 || RepetitionPenalty != 1f || LogitBias is { Count: > 0 } || Json is not null;
    /// <summary>A speculative verifier may decide this request's tokens (it shapes each draft position's logits as if the
    /// drafts before it had been emitted: <see cref="Sampler.Lookahead"/>); logprobs are reported one token at a time.</summary>
    public bool AllowsDrafting => Logprobs is null;
    public const int MaxLogprobs = 20;

    public SamplingOptions Validate()
    {
        if (float.IsNaN(Temperature) || Temperature < 0) throw new SioException($"temperature must be ≥ 0, got {Temperature}");
        if (TopK < 0) throw new SioException($"top-k must be ≥ 0, got {TopK}");
        if (!(TopP > 0 && TopP <= 1)) throw new SioException($"top-p must be in (0, 1], got {TopP}");
        if (!(PresencePenalty is >= -2 and <= 2)) throw new SioException($"presence_penalty must be in [-2, 2], got {PresencePenalty}");
        if (!(FrequencyPenalty is >= -2 and <= 2)) throw new SioException($"frequency_penalty must be in [-2, 2], got {FrequencyPenalty}");
        if (!(RepetitionPenalty > 0 && float.IsFinite(RepetitionPenalty))) throw new SioException($"repetition_penalty must be > 0, got {RepetitionPenalty}");
        if (LogitBias is not null)
            foreach (var (t, v) in LogitBias)
                if (!(v is >= -100 and <= 100)) throw new SioException($"logit_bias of token {t} must be in [-100, 100], got {v}");
        if (Logprobs is int k && k is < 0 or > MaxLogprobs) throw new SioException($"top_logprobs must be from 0 to {MaxLogprobs}, got {k}");
        return this;
    }
}

/// <summary>A chosen token's log-probability under the (penalized, biased) model distribution, with the most likely alternatives.</summary>
public sealed record TokenLogprob(int Token, float Logprob, IReadOnlyList<(int Token, float Logprob)> Top);

/// <summary>Turns logits into a token id.</summary>
public sealed class Sampler
{
    readonly SamplingOptions _options;
    readonly Random _random;
    float[] _probs = [];
    int[] _order = [];
    float[] _shaped = [];
    readonly Dictionary<int, int> _generated = new();
    readonly HashSet<int> _seen = new();
    JsonConstraint? _json;

    /// <summary>Constrains the output to one JSON object (when <see cref="SamplingOptions.Json"/>); tokens are counted against <paramref name="maxTokens"/>.</summary>
    public void ConstrainToJson(Tokenization.Tokenizer tokenizer, IEnumerable<int> stopTokens, int maxTokens)
    {
        if (_options.Json is { } grammar) _json = new JsonConstraint(tokenizer, stopTokens, maxTokens, grammar);
    }

    public Sampler(SamplingOptions options)
    {
        _options = options.Validate();
        _random = options.Seed is int s ? new Random(s) : new Random();
    }

    public SamplingOptions Options => _options;

    /// <summary>The last sampled token's log-probability, when <see cref="SamplingOptions.Logprobs"/> asks for them.</summary>
    public TokenLogprob? Last { get; private set; }

    public int Sample(ReadOnlySpan<float> logits)
    {
        var l = _options.ShapesLogits ? Shape(logits) : logits;
        int token = _options.IsGreedy ? ArgMax(l) : Draw(Distribution(l));
        if (_options.Logprobs is int k) Last = LogprobOf(l, token, k);
        return token;
    }

    /// <summary>
    /// The logits a verifier should see at each draft position: row i shaped (penalties, biases, the JSON constraint) as
    /// if drafts[..i] had been emitted, by a copy of this sampler's state advanced along the drafts. Rows are read in order.
    /// </summary>
    public Speculative.LogitsAt Lookahead(ReadOnlySpan<int> drafts, Speculative.LogitsAt logits)
    {
        if (!_options.ShapesLogits) return logits;
        var fork = new Sampler(_options) { _json = _json?.Fork() };
        foreach (var (t, n) in _generated) fork._generated[t] = n;
        fork._seen.UnionWith(_seen);
        var tokens = drafts.ToArray();
        int observed = 0;
        return i =>
        {
            for (; observed < i; observed++) fork.Observe(tokens[observed]);
            return fork.Shape(logits(i));
        };
    }

    /// <summary>The prompt, for the repetition penalty (which covers prompt and output).</summary>
    public void Prime(IEnumerable<int> prompt)
    {
        if (_options.RepetitionPenalty != 1f) _seen.UnionWith(prompt);
    }

    /// <summary>A token the request emitted (the penalties count it).</summary>
    public void Observe(int token)
    {
        if (!_options.ShapesLogits) return;
        _json?.Advance(token);
        _generated[token] = _generated.GetValueOrDefault(token) + 1;
        _seen.Add(token);
    }

    ReadOnlySpan<float> Shape(ReadOnlySpan<float> logits)
    {
        if (_shaped.Length != logits.Length) _shaped = new float[logits.Length];
        logits.CopyTo(_shaped);
        float rp = _options.RepetitionPenalty;
        if (rp != 1f) foreach (var t in _seen) if ((uint)t < (uint)_shaped.Length) _shaped[t] = _shaped[t] > 0 ? _shaped[t] / rp : _shaped[t] * rp;
        foreach (var (t, n) in _generated)
            if ((uint)t < (uint)_shaped.Length) _shaped[t] -= _options.PresencePenalty + n * _options.FrequencyPenalty;
        if (_options.LogitBias is { } bias) foreach (var (t, b) in bias) if ((uint)t < (uint)_shaped.Length) _shaped[t] += b;
        _json?.Mask(_shaped);
        return _shaped;
    }

    static TokenLogprob LogprobOf(ReadOnlySpan<float> logits, int token, int k)
    {
        float max = float.NegativeInfinity;
        foreach (var v in logits) max = MathF.Max(max, v);
        double sum = 0;
        foreach (var v in logits) sum += Math.Exp(v - max);
        float logZ = max + (float)Math.Log(sum);
        var top = new List<(int Token, float Logprob)>(k);
        for (int i = 0; i < logits.Length && k > 0; i++)
        {
            if (top.Count < k) top.Add((i, logits[i] - logZ));
            else if (logits[i] - logZ > top[^1].Logprob) top[^1] = (i, logits[i] - logZ);
            else continue;
            top.Sort((a, b) => b.Logprob.CompareTo(a.Logprob) is var c && c != 0 ? c : a.Token.CompareTo(b.Token));
        }
        return new TokenLogprob(token, logits[token] - logZ, top);
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
