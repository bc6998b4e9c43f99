using System.CommandLine;
using Sio.Evaluation;
using Sio.Generation;
using Sio.Speculative;

namespace Sio.Cli;

public static class DatastoreCommand
{
    public static Command Create()
    {
        var dir = new Argument<string>("model") { Description = "The target model folder." };
        var dataset = new Option<string>("--dataset") { Description = "Your data (any shape sio reads): its records, and the model's continuations of their openings, go in.", Required = true };
        var prefixes = new Option<string>("--prefix-tokens") { Description = "Opening lengths (tokens) the model continues from, comma-separated.", DefaultValueFactory = _ => "8,16,32" };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Most tokens per continuation.", DefaultValueFactory = _ => 256 };
        var output = new Option<string>("--out") { Description = "The datastore file (JSONL) for --speculative datastore:FILE.", Required = true };
        var cmd = new Command("datastore", "Build a self-distilled datastore for retrieval drafting: your records plus the model's own greedy continuations of their openings.")
        {
            dir, dataset, prefixes, maxTokens, output,
        };
        cmd.SetAction(p =>
        {
            var lengths = Cli.IntList("--prefix-tokens", p.GetValue(prefixes)!);
            using var model = Model.Load(p.GetValue(dir)!);
            var data = DatasetReader.Read(p.GetValue(dataset)!);
            int n = DatastoreBuilder.Build(model, data, p.GetValue(output)!, lengths, p.GetValue(maxTokens), Cli.Progress("datastore"));
            Cli.EndProgress();
            p.InvocationConfiguration.Output.WriteLine($"wrote {n} sequences to {Path.GetFullPath(p.GetValue(output)!)}");
            return 0;
        });
        return cmd;
    }
}
