using System.CommandLine;
using Sio.Models;

namespace Sio.Cli;

public static class ExportCommand
{
    public static Command Create()
    {
        var dir = new Argument<string>("model") { Description = "A float32 sio model folder." };
        var type = new Option<string>("--type") { Description = "Tensor type: f32, q8_0 or q4_0 (llama.cpp's block formats).", DefaultValueFactory = _ => "f32" };
        var output = new Option<string>("--out") { Description = "The .gguf file to write.", Required = true };
        var gguf = new Command("gguf", "Write the model as a GGUF file (llama architecture, tokenizer, tensors) that llama.cpp and LLamaSharp run.") { dir, type, output };
        gguf.SetAction(p =>
        {
            GgufExporter.Export(p.GetValue(dir)!, p.GetValue(type)!, p.GetValue(output)!, Cli.Progress("export"));
            Cli.EndProgress();
            p.InvocationConfiguration.Output.WriteLine($"wrote {Path.GetFullPath(p.GetValue(output)!)} ({new FileInfo(p.GetValue(output)!).Length / 1e6:F2} MB, {p.GetValue(type)})");
            return 0;
        });
        return new Command("export", "Export a model to another runtime's format.") { gguf };
    }
}
