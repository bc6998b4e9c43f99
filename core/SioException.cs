namespace Sio;

/// <summary>
/// The one exception type sio throws for bad input or a failed operation. The message names the
/// file or field and the problem, so that the command line can print it as it is and exit non-zero.
/// </summary>
public class SioException : Exception
{
    public SioException(string message) : base(message) { }
    public SioException(string message, Exception inner) : base(message, inner) { }

    /// <summary>An error about one file: "FILE: problem".</summary>
    public static SioException InFile(string path, string problem) => new($"{path}: {problem}");
}
