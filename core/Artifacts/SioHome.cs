namespace Sio.Artifacts;

/// <summary>sio's own folder on this machine: $SIO_HOME, else ~/.sio (stores, caches and work folders live under it).</summary>
public static class SioHome
{
    public static string Path => Environment.GetEnvironmentVariable("SIO_HOME") is { Length: > 0 } home
        ? home : System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".sio");
}
