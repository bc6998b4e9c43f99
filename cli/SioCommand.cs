using System.CommandLine;

namespace Sio.Cli;

/// <summary>The `sio` command tree. Each verb lives in its own file under Commands/.</summary>
public static class SioCommand
{
    public static RootCommand Create() => new("sio: optimize generative language models with ONNX Runtime: import, quantize, compile, benchmark and serve it, or run the whole pipeline (optimize, up).")
    {
        ImportCommand.Create(),
        GenerateCommand.Create(),
        TokenizeCommand.Create(),
        EvalCommand.Create(),
        QuantizeCommand.Create(),
        CompileCommand.Create(),
        ExportCommand.Create(),
        DatastoreCommand.Create(),
        BenchmarkCommand.Create(),
        ServeCommand.Create(),
        OptimizeCommand.Create(),
        RecommendCommand.Create(),
        UpCommand.Create(),
        BenchCommand.Create(),
    };
}
