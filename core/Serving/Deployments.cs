using Sio.Generation;

namespace Sio.Serving;

/// <summary>A model being served: its engine and the requests still using it.</summary>
public sealed class Deployment : IDisposable
{
    int _inFlight, _retiredFlag;
    bool _retired, _disposed;

    Deployment(string folder, string? id, Model model, InferenceEngine engine, ChatTemplate template)
    {
        Folder = Path.GetFullPath(folder);
        Id = id ?? Path.GetFileName(Folder.TrimEnd('/'));
        Model = model;
        Engine = engine;
        ChatTemplate = template;
    }

    public string Folder { get; }
    public string Id { get; }
    public long Created { get; } = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    public Model Model { get; }
    public InferenceEngine Engine { get; }
    /// <summary>The chat template named by the model's tokenizer_config.json (or the plain one).</summary>
    public ChatTemplate ChatTemplate { get; } = null!;
    public bool Disposed => Volatile.Read(ref _disposed);
    /// <summary>Requests entered and not yet finished.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <param name="id">The model id clients see (/v1/models); default the folder's name.</param>
    public static Deployment Load(string folder, ServeOptions options, ModelOptions? modelOptions = null, string? id = null)
    {
        var model = Model.Load(folder, (modelOptions ?? new ModelOptions()).ForDrafter(options.Speculative));
        id ??= Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)));
        try { return new Deployment(folder, id, model, new InferenceEngine(model, options, id), model.ChatTemplate); }
        catch { model.Dispose(); throw; }
    }

    /// <summary>Marks a request as using this deployment until the returned handle is disposed; null when it is already released.</summary>
    public IDisposable? TryEnter()
    {
        Interlocked.Increment(ref _inFlight);
        if (!Volatile.Read(ref _retired) && !Disposed) return new Exit(this);
        // retired meanwhile: step back out (and release it if this was the last user)
        if (Interlocked.Decrement(ref _inFlight) == 0) Dispose();
        return null;
    }

    sealed class Exit(Deployment d) : IDisposable
    {
        int _done;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0 && Interlocked.Decrement(ref d._inFlight) == 0 && Volatile.Read(ref d._retired)) d.Dispose();
        }
    }

    /// <summary>No new requests come here; it is released once the last one has finished.</summary>
    public void Retire()
    {
        Interlocked.Exchange(ref _retiredFlag, 1); // a full fence: the in-flight count read below is not reordered before it
        Volatile.Write(ref _retired, true);
        if (Volatile.Read(ref _inFlight) == 0) Dispose();
    }

    public void Dispose()
    {
        lock (this)
        {
            if (_disposed) return;
            _disposed = true;
        }
        Engine.Dispose();
        Model.Dispose();
    }
}

/// <summary>
/// Hot swap: the new deployment is loaded beside the current one, takes every request from the
/// moment it is in place, and the old one finishes what it has in flight and is then released.
/// </summary>
public sealed class Deployments(Deployment? first = null) : IDisposable
{
    Deployment? _current = first;

    /// <summary>The deployment taking new requests; null until one is deployed.</summary>
    public Deployment? Current => Volatile.Read(ref _current);

    /// <summary>The current deployment, entered for one request (a swap racing the entry is retried); null when none is deployed.</summary>
    public (Deployment Deployment, IDisposable InFlight)? Enter()
    {
        while (true)
        {
            var d = Current;
            if (d is null) return null;
            if (d.TryEnter() is { } handle) return (d, handle);
        }
    }

    public Deployment Swap(Deployment next)
    {
        var old = Interlocked.Exchange(ref _current, next);
        old?.Retire();
        return next;
    }

    public void Dispose() => Current?.Dispose();
}
