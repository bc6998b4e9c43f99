using Sio.Cli;

// Commands that run a model start ONNX Runtime (loading its library, creating its environment: about 30 ms) on another
// core while the command line is parsed and the model folder read.
var warmUp = args.Length > 0 && args[0] is "generate" or "serve" or "eval" or "bench" or "benchmark" or "up" or "optimize"
    ? Task.Run(() => Microsoft.ML.OnnxRuntime.OrtEnv.Instance())
    : null;
int exit = Cli.Run(SioCommand.Create(), args);
// never exit while the library is still being loaded (a command that failed early): its teardown would race the start
try { warmUp?.Wait(); } catch (AggregateException) { } // a command that needed ONNX Runtime has reported its failure itself
return exit;
