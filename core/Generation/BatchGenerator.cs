using Microsoft.ML.OnnxRuntime;

namespace Sio.Generation;

/// <summary>
/// Several sequences decoded together, one row of a preallocated KV cache each (continuous
/// batching). A row is prefilled on its own (a batch-1 run over that row's slice of the cache);
/// then one decode step runs every row at once: each row's next token at its own position, with
/// GroupQueryAttention writing in place at each row's length. Rows join and leave between steps;
/// a free row still rides along in a step (its result is ignored) so the batch stays one tensor.
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
    }

    public int Rows => _rows;
    public int Capacity => _capacity;
    public int Length(int row) => _lengths[row];
    public ReadOnlySpan<float> Logits(int row) => _logits.AsSpan(row * _vocab, _vocab);

    /// <summary>Starts a row over: runs its prompt alone and keeps the logits of the last token.</summary>
    public void Prefill(int row, ReadOnlySpan<int> prompt)
    {
        int n = prompt.Length;
        if (n < 1 || n > _capacity) throw new SioException($"a prompt of {n} tokens does not fit a row of {_capacity}");
        var ids = new long[n];
        var positions = new long[n];
        for (int i = 0; i < n; i++) { ids[i] = prompt[i]; positions[i] = i; }
        var mask = new long[n];
        Array.Fill(mask, 1L);
        var all = new float[n * _vocab];
        using var binding = _model.Session.CreateIoBinding();
        using var idsValue = OrtValue.CreateTensorValueFromMemory(ids, [1, n]);
        using var posValue = OrtValue.CreateTensorValueFromMemory(positions, [1, n]);
        using var maskValue = OrtValue.CreateTensorValueFromMemory(mask, [1, n]);
        using var logitsValue = OrtValue.CreateTensorValueFromMemory(all, [1, n, _vocab]);
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
        Array.Copy(all, (n - 1) * _vocab, _logits, row * _vocab, _vocab);
        _lengths[row] = n;
    }

    /// <summary>One token for every active row at once; inactive rows are ignored.</summary>
    public void Step(ReadOnlySpan<int> tokens, ReadOnlySpan<bool> active)
    {
        int total = 0;
        for (int r = 0; r < _rows; r++)
        {
            if (active[r] && _lengths[r] + 1 > _capacity) throw new SioException($"row {r} is full ({_capacity} tokens)");
            total = Math.Max(total, active[r] ? _lengths[r] + 1 : 1);
        }
        var ids = new long[_rows];
        var positions = new long[_rows];
        var mask = new long[_rows * total];
        for (int r = 0; r < _rows; r++)
        {
            int len = active[r] ? _lengths[r] : 0; // a free row writes at position 0 of its own slice, harmlessly
            ids[r] = active[r] ? tokens[r] : _model.Config.BosTokenId;
            positions[r] = len;
            for (int i = 0; i <= len; i++) mask[r * total + i] = 1;
        }
        using var binding = _model.Session.CreateIoBinding();
        using var idsValue = OrtValue.CreateTensorValueFromMemory(ids, [_rows, 1]);
        using var posValue = OrtValue.CreateTensorValueFromMemory(positions, [_rows, 1]);
        using var maskValue = OrtValue.CreateTensorValueFromMemory(mask, [_rows, total]);
        using var logitsValue = OrtValue.CreateTensorValueFromMemory(_logits, [_rows, 1, _vocab]);
        binding.BindInput("input_ids", idsValue);
        binding.BindInput("position_ids", posValue);
        binding.BindInput("attention_mask", maskValue);
        binding.BindOutput("logits", logitsValue);
        for (int l = 0; l < _layers; l++)
        {
            binding.BindInput($"past_key_values.{l}.key", _keyAll[l]);
            binding.BindInput($"past_key_values.{l}.value", _valueAll[l]);
            binding.BindOutput($"present.{l}.key", _keyAll[l]);
            binding.BindOutput($"present.{l}.value", _valueAll[l]);
        }
        _model.Session.RunWithBinding(_run, binding);
        for (int r = 0; r < _rows; r++) if (active[r]) _lengths[r]++;
    }

    public void Dispose()
    {
        foreach (var v in _keyAll) v.Dispose();
        foreach (var v in _valueAll) v.Dispose();
        foreach (var v in _keyRow) v.Dispose();
        foreach (var v in _valueRow) v.Dispose();
        _run.Dispose();
    }
}
