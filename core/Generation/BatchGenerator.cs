using Microsoft.ML.OnnxRuntime;

namespace Sio.Generation;

/// <summary>
/// Several sequences decoded together, one row of a preallocated KV cache each (continuous
/// batching). A row is prefilled on its own (a batch-1 run over that row's slice of the cache);
/// then one decode step runs every row at once: each row's next token at its own position, with
/// GroupQueryAttention writing in place at each row's length. Rows join and leave between steps;
/// a step runs rows 0..(last active) as one tensor, and a free row among them rides along (its result is ignored).
/// A row can also take several tokens in a pass of its own (<see cref="Append"/>: speculative verification).
/// </summary>
public sealed class BatchGenerator : IDisposable
{
    readonly Model _model;
    readonly int _rows, _capacity, _vocab, _layers;
    readonly float[][] _keys, _values;       // (layer) → (rows, kv_heads, capacity, head)
    readonly OrtValue[] _keyAll, _valueAll;   // (layer) → the whole cache
    readonly OrtValue[,] _keyRow, _valueRow;  // (row, layer) → one row's slice
    readonly int[] _lengths;
    readonly float[] _logits;                 // (rows, vocab): each row's latest logits
    readonly float[]?[] _appendLogits;       // (row) → (n, vocab): every position of the row's last Append
    readonly (OrtValue, OrtValue)[]?[] _prefix; // (batch) → (layer) → the cache of rows 0..batch-1
    readonly RunOptions _run = new();

    public BatchGenerator(Model model, int rows, int capacity = 0)
    {
        if (rows < 1) throw new SioException($"batch rows must be ≥ 1, got {rows}");
        var c = model.Config;
        _model = model;
        _rows = rows;
        _capacity = capacity <= 0 || capacity > c.ContextLength ? c.ContextLength : capacity;
        _vocab = c.VocabSize;
        _layers = c.Layers;
        long rowSize = (long)c.KvHeads * _capacity * c.HeadDim;
        _keys = new float[_layers][];
        _values = new float[_layers][];
        _keyAll = new OrtValue[_layers];
        _valueAll = new OrtValue[_layers];
        _keyRow = new OrtValue[rows, _layers];
        _valueRow = new OrtValue[rows, _layers];
        for (int l = 0; l < _layers; l++)
        {
            _keys[l] = new float[rowSize * rows];
            _values[l] = new float[rowSize * rows];
            _keyAll[l] = OrtValue.CreateTensorValueFromMemory(_keys[l], [rows, c.KvHeads, _capacity, c.HeadDim]);
            _valueAll[l] = OrtValue.CreateTensorValueFromMemory(_values[l], [rows, c.KvHeads, _capacity, c.HeadDim]);
            for (int r = 0; r < rows; r++)
            {
                _keyRow[r, l] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _keys[l].AsMemory((int)(r * rowSize), (int)rowSize), [1, c.KvHeads, _capacity, c.HeadDim]);
                _valueRow[r, l] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _values[l].AsMemory((int)(r * rowSize), (int)rowSize), [1, c.KvHeads, _capacity, c.HeadDim]);
            }
        }
        _lengths = new int[rows];
        _logits = new float[rows * _vocab];
        _prefix = new (OrtValue, OrtValue)[]?[rows + 1];
        _appendLogits = new float[]?[rows];
    }

    public int Rows => _rows;
    public int Capacity => _capacity;
    public int Length(int row) => _lengths[row];
    public ReadOnlySpan<float> Logits(int row) => _logits.AsSpan(row * _vocab, _vocab);

    /// <summary>Starts a row over: runs its prompt alone and keeps the logits of the last token.</summary>
    public void Prefill(int row, ReadOnlySpan<int> prompt)
    {
        if (prompt.Length < 1 || prompt.Length > _capacity) throw new SioException($"a prompt of {prompt.Length} tokens does not fit a row of {_capacity}");
        _lengths[row] = 0;
        Append(row, prompt);
    }

    /// <summary>One token for every active row at once, in one pass over rows 0..(last active); inactive rows are ignored.</summary>
    public void Step(ReadOnlySpan<int> tokens, ReadOnlySpan<bool> active)
    {
        int batch = 0, total = 1;
        for (int r = 0; r < _rows; r++)
        {
            if (!active[r]) continue;
            if (_lengths[r] + 1 > _capacity) throw new SioException($"row {r} is full ({_capacity} tokens)");
            batch = r + 1;
        }
        if (batch == 0) return;
        for (int r = 0; r < batch; r++) total = Math.Max(total, (active[r] || _lengths[r] < _capacity ? _lengths[r] : 0) + 1);
        var ids = new long[batch];
        var positions = new long[batch];
        var mask = new long[batch * total];
        for (int r = 0; r < batch; r++)
        {
            // a row that is not stepping writes one entry just past its own length (or at 0 when full), where its next
            // append overwrites it: a free row, or a row whose prompt is still being read (chunked prefill)
            int len = active[r] ? _lengths[r] : _lengths[r] < _capacity ? _lengths[r] : 0;
            ids[r] = active[r] ? tokens[r] : _model.Config.BosTokenId;
            positions[r] = len;
            for (int i = 0; i <= len; i++) mask[r * total + i] = 1;
        }
        using var binding = _model.Session.CreateIoBinding();
        using var idsValue = OrtValue.CreateTensorValueFromMemory(ids, [batch, 1]);
        using var posValue = OrtValue.CreateTensorValueFromMemory(positions, [batch, 1]);
        using var maskValue = OrtValue.CreateTensorValueFromMemory(mask, [batch, total]);
        using var logitsValue = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _logits.AsMemory(0, batch * _vocab), [batch, 1, _vocab]);
        binding.BindInput("input_ids", idsValue);
        binding.BindInput("position_ids", posValue);
        binding.BindInput("attention_mask", maskValue);
        binding.BindOutput("logits", logitsValue);
        for (int l = 0; l < _layers; l++)
        {
            var (keys, values) = Prefix(batch, l);
            binding.BindInput($"past_key_values.{l}.key", keys);
            binding.BindInput($"past_key_values.{l}.value", values);
            binding.BindOutput($"present.{l}.key", keys);
            binding.BindOutput($"present.{l}.value", values);
        }
        _model.Session.RunWithBinding(_run, binding);
        for (int r = 0; r < batch; r++) if (active[r]) _lengths[r]++;
    }

    /// <summary>
    /// Appends several tokens to one row in a pass of its own (GroupQueryAttention takes several new tokens over a
    /// past only at batch 1): speculative verification. <see cref="LogitsAt"/> then gives every appended position's
    /// logits, <see cref="Logits"/> the last one's.
    /// </summary>
    public void Append(int row, ReadOnlySpan<int> tokens)
    {
        int n = tokens.Length, len = _lengths[row];
        if (n < 1 || len + n > _capacity) throw new SioException($"{n} tokens do not fit row {row} ({len} of {_capacity} used)");
        var ids = new long[n];
        var positions = new long[n];
        for (int i = 0; i < n; i++) { ids[i] = tokens[i]; positions[i] = len + i; }
        var mask = new long[len + n];
        Array.Fill(mask, 1L);
        if (_appendLogits[row] is not { } buffer || buffer.Length < n * _vocab) _appendLogits[row] = buffer = new float[n * _vocab];
        using var binding = _model.Session.CreateIoBinding();
        using var idsValue = OrtValue.CreateTensorValueFromMemory(ids, [1, n]);
        using var posValue = OrtValue.CreateTensorValueFromMemory(positions, [1, n]);
        using var maskValue = OrtValue.CreateTensorValueFromMemory(mask, [1, len + n]);
        using var logitsValue = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, buffer.AsMemory(0, n * _vocab), [1, n, _vocab]);
        binding.BindInput("input_ids", idsValue);
        binding.BindInput("position_ids", posValue);
        binding.BindInput("attention_mask", maskValue);
        binding.BindOutput("logits", logitsValue);
        for (int l = 0; l < _layers; l++)
        {
            binding.BindInput($"past_key_values.{l}.key", _keyRow[row, l]);
            binding.BindInput($"past_key_values.{l}.value", _valueRow[row, l]);
            binding.BindOutput($"present.{l}.key", _keyRow[row, l]);
            binding.BindOutput($"present.{l}.value", _valueRow[row, l]);
        }
        _model.Session.RunWithBinding(_run, binding);
        Array.Copy(buffer, (n - 1) * _vocab, _logits, row * _vocab, _vocab);
        _lengths[row] += n;
    }

    /// <summary>The logits after the i-th token of the last <see cref="Append"/> to a row.</summary>
    public ReadOnlySpan<float> LogitsAt(int row, int i) => _appendLogits[row].AsSpan(i * _vocab, _vocab);

    /// <summary>Shortens a row to its first <paramref name="length"/> entries (the rest are overwritten by the next step).</summary>
    public void RewindTo(int row, int length)
    {
        if (length < 0 || length > _lengths[row]) throw new ArgumentOutOfRangeException(nameof(length));
        _lengths[row] = length;
    }

    /// <summary>The cache of rows 0..batch-1 for a layer (row slices are contiguous, so a prefix is one tensor).</summary>
    (OrtValue Keys, OrtValue Values) Prefix(int batch, int layer)
    {
        if (batch == _rows) return (_keyAll[layer], _valueAll[layer]);
        _prefix[batch] ??= new (OrtValue, OrtValue)[_layers];
        if (_prefix[batch]![layer].Item1 is null)
        {
            var c = _model.Config;
            int size = (int)((long)c.KvHeads * _capacity * c.HeadDim * batch);
            _prefix[batch]![layer] = (
                OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _keys[layer].AsMemory(0, size), [batch, c.KvHeads, _capacity, c.HeadDim]),
                OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _values[layer].AsMemory(0, size), [batch, c.KvHeads, _capacity, c.HeadDim]));
        }
        return _prefix[batch]![layer];
    }

    public void Dispose()
    {
        foreach (var v in _keyAll) v.Dispose();
        foreach (var v in _valueAll) v.Dispose();
        foreach (var v in _keyRow) v.Dispose();
        foreach (var v in _valueRow) v.Dispose();
        foreach (var layers in _prefix)
            if (layers is not null) foreach (var (k, v) in layers) { k?.Dispose(); v?.Dispose(); }
        _run.Dispose();
    }
}
