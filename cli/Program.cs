using System.CommandLine;
using Sio;
using Sio.Cli;

// sio: every capability from a terminal. Each verb lives in its own file under Commands/.
var root = new RootCommand("sio: optimize generative language models (import, generate, evaluate, benchmark) with ONNX Runtime.");
root.Subcommands.Add(ImportCommand.Create());
root.Subcommands.Add(GenerateCommand.Create());
root.Subcommands.Add(EvalCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
return Cli.Run(root, args);
