namespace Sio.Artifacts;

/// <summary>
/// The one way sio writes a folder: checked against its inputs, built in a hidden sibling (<c>.NAME.tmp-ID</c>) and
/// swapped into place whole, so that a failure or a kill never leaves a half-written folder or loses the previous one.
/// While it is open the process holds <c>.NAME.lock</c> (released by the OS even on kill -9), so whatever a crashed run
/// left (a temporary folder; a previous folder moved aside mid-swap) is recognised as stale and recovered by the next run.
/// </summary>
public sealed class OutputFolder : IDisposable
{
    readonly FileStream _lock;
    bool _done;

    /// <summary>The folder being written; <see cref="Commit"/> moves it to <see cref="Destination"/>.</summary>
    public string Temp { get; }
    public string Destination { get; }

    OutputFolder(string destination, FileStream lockFile)
    {
        Destination = destination;
        _lock = lockFile;
        Temp = Sibling(destination, $"tmp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Temp);
    }

    /// <summary>Refuses an output that contains or lies inside an input, recovers what a crashed run left, and opens the temporary folder.</summary>
    /// <param name="check">Checks the destination before anything is written (for example: it must be empty or a sio folder).</param>
    public static OutputFolder Begin(string destination, IEnumerable<string?> inputs, Action<string>? check = null)
    {
        destination = Path.GetFullPath(destination.TrimEnd('/', '\\'));
        CheckDisjoint(destination, inputs);
        var parent = Path.GetDirectoryName(destination) ?? throw new SioException($"{destination}: cannot write the root folder");
        if (File.Exists(parent)) throw SioException.InFile(destination, $"{parent} is a file, not a folder");
        try { Directory.CreateDirectory(parent); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw SioException.InFile(destination, $"cannot create the folder ({e.Message})"); }
        FileStream lockFile;
        try { lockFile = new FileStream(Sibling(destination, "lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose); }
        catch (UnauthorizedAccessException e) { throw SioException.InFile(destination, $"cannot write here ({e.Message})"); }
        catch (IOException) { throw SioException.InFile(destination, "another sio process is writing this folder now"); }
        try
        {
            Recover(destination);
            check?.Invoke(destination);
            return new OutputFolder(destination, lockFile);
        }
        catch (Exception e)
        {
            lockFile.Dispose();
            if (e is UnauthorizedAccessException or IOException) throw SioException.InFile(destination, $"cannot write here ({e.Message})");
            throw;
        }
    }

    /// <summary>A model folder's own runtime caches (the int4 self-draft): the one place inside an input sio writes to.</summary>
    public const string RuntimeCache = ".sio";

    /// <summary>Refuses an output that is, contains or lies inside any input (a file or a folder), except the input's <see cref="RuntimeCache"/>.</summary>
    public static void CheckDisjoint(string output, IEnumerable<string?> inputs)
    {
        var o = Path.GetFullPath(output.TrimEnd('/', '\\'));
        foreach (var input in inputs)
        {
            if (string.IsNullOrEmpty(input)) continue;
            var i = Path.GetFullPath(input.TrimEnd('/', '\\'));
            if (Within(i, o)) throw SioException.InFile(o, $"the output would replace its own input {i}; choose an --out outside it");
            if (Within(o, i) && !Within(o, Path.Combine(i, RuntimeCache))) throw SioException.InFile(o, $"the output lies inside the input {i}; choose an --out outside it");
        }
    }

    static bool Within(string path, string folder) =>
        path.Equals(folder, StringComparison.Ordinal) || path.StartsWith(folder.EndsWith(Path.DirectorySeparatorChar) ? folder : folder + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    /// <summary>Moves the finished folder into place; a previous folder there is replaced (moved aside first, then deleted).</summary>
    public void Commit()
    {
        if (_done) throw new InvalidOperationException("already committed");
        if (Directory.Exists(Destination))
        {
            var old = Sibling(Destination, $"old-{Guid.NewGuid():N}");
            Directory.Move(Destination, old);
            Directory.Move(Temp, Destination); // a kill between the two moves is undone by the next run's Recover
            Directory.Delete(old, true);
        }
        else Directory.Move(Temp, Destination);
        _done = true;
    }

    public void Dispose()
    {
        if (!_done)
        {
            try { if (Directory.Exists(Temp)) Directory.Delete(Temp, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            _done = true;
        }
        _lock.Dispose();
    }

    static string Sibling(string destination, string suffix) =>
        Path.Combine(Path.GetDirectoryName(destination)!, $".{Path.GetFileName(destination)}.{suffix}");

    /// <summary>
    /// With the lock held nobody else is writing, so leftovers are a crashed run's: a previous folder moved aside while the
    /// destination is missing is put back (the swap never finished); every other temporary or moved-aside folder is deleted.
    /// </summary>
    static void Recover(string destination)
    {
        var parent = Path.GetDirectoryName(destination)!;
        var name = Path.GetFileName(destination);
        var old = Directory.GetDirectories(parent, $".{name}.old-*").Concat(Directory.GetDirectories(parent, $"{name}.old-*")) // the latter: sio before 2026-12
            .OrderByDescending(d => Directory.EnumerateFileSystemEntries(d).Any()).ThenByDescending(Directory.GetLastWriteTimeUtc).ToList();
        if (!Directory.Exists(destination) && old.Count > 0)
        {
            Directory.Move(old[0], destination);
            old.RemoveAt(0);
        }
        foreach (var stale in old.Concat(Directory.GetDirectories(parent, $".{name}.tmp-*")))
            Directory.Delete(stale, true);
    }
}
