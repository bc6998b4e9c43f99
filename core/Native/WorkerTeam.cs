using System.Runtime.CompilerServices;

namespace Sio.Native;

/// <summary>
/// Threads that split each piece of a decode step between them (the caller is worker 0). Between pieces the helpers
/// spin, because a step hands out a hundred pieces of tens of microseconds each; after about a millisecond without
/// work they sleep until the next one. Without spinning (a draft model takes turns with the target on the same cores)
/// they sleep almost at once.
/// </summary>
public sealed class WorkerTeam : IDisposable
{
    readonly Thread[] _helpers;
    readonly object _gate = new();
    Action<int, int>? _work;
    int _generation, _pending, _sleepers;
    volatile bool _stopped;
    Exception? _failure;

    public int Size { get; }

    readonly int _spins;

    public WorkerTeam(int size, bool spin = true)
    {
        Size = Math.Max(1, size);
        _spins = spin ? 20_000 : 20;
        _helpers = new Thread[Size - 1];
        for (int i = 0; i < _helpers.Length; i++)
        {
            int id = i + 1;
            _helpers[i] = new Thread(() => Help(id)) { IsBackground = true, Name = $"sio native worker {id}" };
            _helpers[i].Start();
        }
    }

    /// <summary>Runs work(worker, workers) on every worker and returns when all are done.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Run(Action<int, int> work)
    {
        if (Size == 1) { work(0, 1); return; }
        _work = work;
        Volatile.Write(ref _pending, Size - 1);
        Interlocked.Increment(ref _generation);
        if (Volatile.Read(ref _sleepers) > 0) lock (_gate) Monitor.PulseAll(_gate);
        Exception? failure;
        try
        {
            work(0, Size);
        }
        finally
        {
            var spin = new SpinWait();
            while (Volatile.Read(ref _pending) != 0) spin.SpinOnce(-1);
            failure = Interlocked.Exchange(ref _failure, null);   // cleared even when worker 0 threw too
        }
        if (failure is not null) throw new AggregateException(failure);
    }

    /// <summary>Runs body over [0, count) split into one contiguous range per worker, each a multiple of <paramref name="align"/>.</summary>
    public void For(int count, int align, Action<int, int> body) => Run([MethodImpl(MethodImplOptions.AggressiveOptimization)] (worker, workers) =>
    {
        int per = (count + workers - 1) / workers;
        per = (per + align - 1) / align * align;
        int start = worker * per, end = Math.Min(count, start + per);
        if (start < end) body(start, end);
    });

    void Help(int id)
    {
        int seen = 0;
        while (true)
        {
            int spins = 0;
            while (Volatile.Read(ref _generation) == seen && !_stopped)
            {
                if (++spins < _spins) { Thread.SpinWait(10); continue; }
                lock (_gate)
                {
                    Interlocked.Increment(ref _sleepers);
                    while (Volatile.Read(ref _generation) == seen && !_stopped) Monitor.Wait(_gate);
                    Interlocked.Decrement(ref _sleepers);
                }
            }
            if (_stopped) return;
            seen = Volatile.Read(ref _generation);
            try { _work!(id, Size); }
            catch (Exception e) { _failure = e; }
            finally { Interlocked.Decrement(ref _pending); }
        }
    }

    public void Dispose()
    {
        _stopped = true;
        lock (_gate) Monitor.PulseAll(_gate);
    }
}
