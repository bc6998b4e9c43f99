using System.CommandLine;
using System.Text.Json;

namespace Sio.Cli;

/// <summary>Shared plumbing: one error path (SioException → "error: …", exit 1) and JSON output.</summary>
public static class Cli
{
    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static int Run(RootCommand root, string[] args, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        var config = new InvocationConfiguration { Output = stdout ?? Console.Out, Error = stderr ?? Console.Error, EnableDefaultExceptionHandler = false };
        ProgressTarget.Value = (config.Error, stderr is null && !Console.IsErrorRedirected);
        bool json = args.Contains("--json");
        try
        {
            var parsed = root.Parse(args);
            if (parsed.Errors.Count > 0 && !WantsHelp(args))
                return Fail(config, json, "usage_error", [.. parsed.Errors.Select(e => InDomainWords(e.Message))], $"see: {string.Join(' ', CommandPath(parsed.CommandResult))} --help");
            return parsed.Invoke(config);
        }
        catch (Exception e) when (Unwrap(e) is SioException or IOException or UnauthorizedAccessException)
        {
            // file-system errors name their path in .NET's message ("Access to the path '/x' is denied.")
            return Fail(config, json, Unwrap(e) is SioException ? "invalid_input" : "io_error", [Unwrap(e).Message], null);
        }
    }

    /// <summary>An error: "error: …" lines (and a hint) on stderr, and with --json also {"error": {message, type, hint}} on stdout; exit 1.</summary>
    static int Fail(InvocationConfiguration config, bool json, string type, IReadOnlyList<string> messages, string? hint)
    {
        foreach (var m in messages) config.Error.WriteLine($"error: {m}");
        if (hint is not null) config.Error.WriteLine(hint);
        if (json) WriteJson(config.Output, new { error = new { message = string.Join("; ", messages), type, hint } });
        return 1;
    }

    /// <summary>A parser message without .NET's type names: "Cannot parse argument 'x' for option '--port' as expected type 'System.Int32'." says "as a whole number".</summary>
    static string InDomainWords(string message) => System.Text.RegularExpressions.Regex.Replace(message, @"as expected type '([\w.`\[\]]+)'", m => m.Groups[1].Value switch
    {
        "System.Int32" or "System.Int64" or "System.Nullable`1[System.Int32]" => "as a whole number",
        "System.Double" or "System.Single" or "System.Nullable`1[System.Double]" => "as a number",
        "System.Boolean" => "as true or false",
        _ => "as a value of the right kind",
    });

    static Exception Unwrap(Exception e) => e is AggregateException { InnerExceptions.Count: 1 } a ? Unwrap(a.InnerException!) : e;

    static bool WantsHelp(string[] args) => args.Any(a => a is "--help" or "-h" or "-?");

    static IEnumerable<string> CommandPath(System.CommandLine.Parsing.CommandResult? c)
    {
        var names = new Stack<string>();
        for (var r = c; r is not null; r = r.Parent as System.CommandLine.Parsing.CommandResult) names.Push(r.Command is RootCommand ? "sio" : r.Command.Name);
        return names;
    }

    /// <summary>Parses "1,2,4" for an option, or fails naming the option.</summary>
    public static int[] IntList(string option, string value)
    {
        try { return value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToArray(); }
        catch (Exception e) when (e is FormatException or OverflowException) { throw new SioException($"{option} must be comma-separated numbers, got '{value}'"); }
    }

    /// <summary>Parses "0.5,1,2" for an option, or fails naming the option.</summary>
    public static double[] DoubleList(string option, string value)
    {
        try { return value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(v => double.Parse(v, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture)).ToArray(); }
        catch (Exception e) when (e is FormatException or OverflowException) { throw new SioException($"{option} must be comma-separated numbers, got '{value}'"); }
    }

    /// <summary>--engine onnx|native for commands that decode one sequence.</summary>
    public static Option<string> EngineOption()
    {
        var o = new Option<string>("--engine")
        {
            Description = "What runs the decode steps: onnx (ONNX Runtime) or native (sio's own C# decoder on the CPU: MatMulNBits with int8 inputs as at --accuracy-level 4 and bfloat16 keys/values, float MatMuls in float; prompts and speculative verification still run in ONNX Runtime, on the same cache).",
            DefaultValueFactory = _ => "onnx",
        };
        o.AcceptOnlyFromAmong("onnx", "native");
        return o;
    }

    public static void WriteJson(TextWriter w, object value) => w.WriteLine(JsonSerializer.Serialize(value, Json));

    /// <summary>Where this invocation's progress goes (its error writer) and whether that is a terminal.</summary>
    static readonly AsyncLocal<(TextWriter Error, bool Terminal)> ProgressTarget = new();
    static readonly AsyncLocal<CommandProgress?> Current = new();

    /// <summary>A long command's progress on stderr: a bar with ETA in a terminal, plain lines per phase and per 10 % elsewhere.</summary>
    public static IProgress<string> Progress(string command)
    {
        Current.Value?.End();
        var (error, terminal) = ProgressTarget.Value;
        return Current.Value = new CommandProgress(command, error ?? Console.Error, terminal);
    }

    public static void EndProgress()
    {
        Current.Value?.End();
        Current.Value = null;
    }
}
