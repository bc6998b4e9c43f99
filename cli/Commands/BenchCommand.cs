using System.CommandLine;
using Sio.Benchmarking;
using Sio.Generation;

namespace Sio.Cli;

public static class BenchCommand
{
    public static Command Create()
    {
        var dir = new Argument<string>("model") { Description = "A sio model folder." };
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "Prompt length for prefill.", DefaultValueFactory = _ => 128 };
        var tokens = new Option<int>("--tokens") { Description = "Tokens decoded per run.", DefaultValueFactory = _ => 128 };
        var runs = new Option<int>("--runs") { Description = "Measured runs (after one warm-up); medians are reported.", DefaultValueFactory = _ => 5 };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime intra-op threads (0: one per core).", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON." };
        var decode = new Command("decode", "Prefill and decode tokens/s at batch 1, beside the memory-bandwidth bound measured in the same run.")
        {
            dir, promptTokens, tokens, runs, threads, json,
        };
        decode.SetAction(p =>
        {
            using var model = Model.Load(p.GetValue(dir)!, new ModelOptions { Threads = p.GetValue(threads) });
            var result = DecodeBenchmark.Run(model, new DecodeBenchmarkOptions
            {
                PromptTokens = p.GetValue(promptTokens), DecodeTokens = p.GetValue(tokens), Runs = p.GetValue(runs), Threads = p.GetValue(threads),
            }, Cli.Progress("bench"));
            Cli.EndProgress();
            var o = p.InvocationConfiguration.Output;
            if (p.GetValue(json))
                Cli.WriteJson(o, new
                {
                    model = Path.GetFullPath(p.GetValue(dir)!),
                    machine = new { cores = Environment.ProcessorCount, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription },
                    result.PromptTokens, result.DecodeTokens, result.Runs,
                    prefill_tokens_per_second = result.PrefillTokensPerSecond,
                    decode_tokens_per_second = result.DecodeTokensPerSecond,
                    weight_bytes_per_token = result.WeightBytesPerToken,
                    bandwidth_gbps = result.BandwidthGBps,
                    bound_tokens_per_second = result.BoundTokensPerSecond,
                    fraction_of_bound = result.FractionOfBound,
                });
            else
                o.WriteLine($"prefill {result.PrefillTokensPerSecond:F1} tok/s, decode {result.DecodeTokensPerSecond:F1} tok/s; " +
                    $"weights {result.WeightBytesPerToken / 1e6:F1} MB/token, bandwidth {result.BandwidthGBps:F1} GB/s → bound {result.BoundTokensPerSecond:F1} tok/s; decode at {result.FractionOfBound:P0} of the bound");
            return 0;
        });
        return new Command("bench", "Benchmarks.") { decode };
    }
}
