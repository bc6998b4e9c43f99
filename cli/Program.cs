using Sio.Cli;

// Commands that run a model start ONNX Runtime (loading its library, creating its environment: about 30 ms) on another
// core while the command line is parsed and the model folder read.
if (args.Length > 0 && args[0] is "generate" or "serve" or "eval" or "bench" or "benchmark" or "up" or "optimize")
    _ = Task.Run(() => Microsoft.ML.OnnxRuntime.OrtEnv.Instance());
return Cli.Run(SioCommand.Create(), args);
