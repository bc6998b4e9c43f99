using Microsoft.ML.OnnxRuntime;

namespace Sio.Generation;

/// <summary>
/// One sequence being decoded: append tokens (one or many at once, on top of what is there), read
/// the logits they produced, rewind to drop tokens. The caller owns the loop, which makes sampling,
/// streaming, cancellation and speculative verification the caller's choice.
/// </summary>
public sealed class Generator : IDisposable
{
    readonly Model _model;
    readonly KvCache _cache;
    readonly List<int> _sequence = new();
    readonly int _vocab;
    float[] _logits = [];   // (appended, vocab): logits after each token of the last append
    int _logitRows;
    readonly RunOptions _run = new();
    readonly OrtIoBinding _binding;

    /// <param name="capacity">Longest sequence this generator holds; defaults to the model's context.</param>
    public Generator(Model model, int capacity = 0)
    {
        _model = model;
        _vocab = model.Config.VocabSize;
        if (capacity <= 0 || capacity > model.Config.ContextLength) capacity = model.Config.ContextLength;
        _cache = new KvCache(model.Config, capacity);
        _binding = model.Session.CreateIoBinding();
        for (int l = 0; l < model.Config.Layers; l++)
        {
            _binding.BindInput($"past_key_values.{l}.key", _cache.Keys[l]);
            _binding.BindInput($"past_key_values.{l}.value", _cache.Values[l]);
            _binding.BindOutput($"present.{l}.key", _cache.Keys[l]);
            _binding.BindOutput($"present.{l}.value", _cache.Values[l]);
        }
    }

    public Model Model => _model;
    /// <summary>Every token in the cache, prompt included.</summary>
    public IReadOnlyList<int> Sequence => _sequence;
    public int Length => _sequence.Count;
    public int Capacity => _cache.Capacity;
    public int Remaining => _cache.Capacity - _sequence.Count;

    /// <summary>Runs the model on new tokens on top of the cache and keeps the logits of each.</summary>
    public void AppendTokens(ReadOnlySpan<int> tokens)
    {
        int n = tokens.Length;
        if (n == 0) throw new SioException("no tokens to append");
        int past = _sequence.Count;
        if (past + n > _cache.Capacity)
            throw new SioException($"sequence of {past + n} tokens exceeds the capacity of {_cache.Capacity} (the model's context is {_model.Config.ContextLength})");
        foreach (var t in tokens)
            if ((uint)t >= (uint)_vocab) throw new SioException($"token id {t} is outside the vocabulary of {_vocab}");

        if (_logits.Length < n * _vocab) _logits = new float[n * _vocab];
        if (n == 1 && _model.Native is { } native) native.Step(tokens[0], past, _cache, _logits);
        else RunSession(tokens, past);
        _sequence.AddRange(tokens);
        _cache.Length = _sequence.Count;
        _logitRows = n;
    }

    /// <summary>ONNX Runtime on <paramref name="tokens"/> at positions past …, logits into the buffer, keys and values
    /// into the cache.</summary>
    void RunSession(ReadOnlySpan<int> tokens, int past)
    {
        int n = tokens.Length;
        var ids = new long[n];
        var positions = new long[n];
        for (int i = 0; i < n; i++) { ids[i] = tokens[i]; positions[i] = past + i; }
        var mask = new long[past + n];
        Array.Fill(mask, 1L);

        using var idsValue = OrtValue.CreateTensorValueFromMemory(ids, [1, n]);
        using var posValue = OrtValue.CreateTensorValueFromMemory(positions, [1, n]);
        using var maskValue = OrtValue.CreateTensorValueFromMemory(mask, [1, past + n]);
        using var logitsValue = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _logits.AsMemory(0, n * _vocab), [1, n, _vocab]);
        _binding.BindInput("input_ids", idsValue);
        _binding.BindInput("position_ids", posValue);
        _binding.BindInput("attention_mask", maskValue);
        _binding.BindOutput("logits", logitsValue);
        try
        {
            _model.Session.RunWithBinding(_run, _binding);
        }
        catch (OnnxRuntimeException e)
        {
            throw new SioException($"model run failed: {e.Message}", e);
        }
    }

    /// <summary>Logits after the i-th token of the last append (predicting the token that follows it).</summary>
    public ReadOnlySpan<float> Logits(int i)
    {
        if ((uint)i >= (uint)_logitRows) throw new ArgumentOutOfRangeException(nameof(i));
        return _logits.AsSpan(i * _vocab, _vocab);
    }

    /// <summary>Logits predicting the next token.</summary>
    public ReadOnlySpan<float> LastLogits => Logits(_logitRows - 1);
    public int LogitRows => _logitRows;

    /// <summary>Drops tokens after <paramref name="length"/>; the cache entries past it are overwritten later.</summary>
    public void RewindTo(int length)
    {
        if (length < 0 || length > _sequence.Count) throw new ArgumentOutOfRangeException(nameof(length));
        _sequence.RemoveRange(length, _sequence.Count - length);
        _cache.Length = length;
        _logitRows = 0;
    }

    public void Dispose()
    {
        _binding.Dispose();
        _run.Dispose();
        _cache.Dispose();
    }
}
