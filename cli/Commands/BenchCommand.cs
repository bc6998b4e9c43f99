using System.CommandLine;
using Sio.Benchmarking;
using Sio.Generation;

namespace Sio.Cli;

public static class BenchCommand
{
    public static Command Create()
    {
        var dirs = new Argument<string[]>("models") { Arity = ArgumentArity.OneOrMore, Description = "One or more sio model folders, measured side by side in one run (ratios are against the first)." };
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "Prompt length for prefill.", DefaultValueFactory = _ => 128 };
        var tokens = new Option<int>("--tokens") { Description = "Tokens decoded per run.", DefaultValueFactory = _ => 128 };
        var runs = new Option<int>("--runs") { Description = "Measured runs (after one warm-up); medians are reported.", DefaultValueFactory = _ => 5 };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime intra-op threads (0: one per core).", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print the results as JSON." };
        var decode = new Command("decode", "Prefill and decode tokens/s at batch 1, beside the memory-bandwidth bound measured in the same run.")
        {
            dirs, promptTokens, tokens, runs, threads, json,
        };
        decode.SetAction(p =>
        {
            var options = new DecodeBenchmarkOptions
            {
                PromptTokens = p.GetValue(promptTokens), DecodeTokens = p.GetValue(tokens), Runs = p.GetValue(runs), Threads = p.GetValue(threads), MeasureBandwidth = true,
            };
            var results = new List<(string Model, DecodeBenchmarkResult Result)>();
            foreach (var dir in p.GetValue(dirs)!)
            {
                using var model = Model.Load(dir, new ModelOptions { Threads = options.Threads });
                results.Add((Path.GetFullPath(dir), DecodeBenchmark.Run(model, options, Cli.Progress($"bench {Path.GetFileName(dir.TrimEnd('/'))}"))));
            }
            Cli.EndProgress();
            var first = results[0].Result;
            var rows = results.Select(r => new
            {
                model = r.Model,
                prefill_tokens_per_second = r.Result.PrefillTokensPerSecond,
                decode_tokens_per_second = r.Result.DecodeTokensPerSecond,
                decode_speedup = r.Result.DecodeTokensPerSecond / first.DecodeTokensPerSecond,
                weight_bytes_per_token = r.Result.WeightBytesPerToken,
                bandwidth_gbps = r.Result.BandwidthGBps,
                bound_tokens_per_second = r.Result.BoundTokensPerSecond,
                fraction_of_bound = r.Result.FractionOfBound,
            }).ToList();
            var o = p.InvocationConfiguration.Output;
            if (p.GetValue(json))
                Cli.WriteJson(o, new
                {
                    machine = new { cores = Environment.ProcessorCount, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription, onnxruntime = "1.31.1" },
                    prompt_tokens = options.PromptTokens, decode_tokens = options.DecodeTokens, runs = options.Runs,
                    models = rows,
                });
            else
            {
                o.WriteLine($"batch 1, {options.PromptTokens}-token prompt, {options.DecodeTokens} decoded tokens, median of {options.Runs} runs; read bandwidth measured around each model");
                foreach (var r in rows)
                    o.WriteLine($"{Path.GetFileName(r.model),-28} prefill {r.prefill_tokens_per_second,9:F1} tok/s  decode {r.decode_tokens_per_second,8:F1} tok/s ({r.decode_speedup:F2}x)  " +
                        $"weights {r.weight_bytes_per_token / 1e6,7:F1} MB/token  bandwidth {r.bandwidth_gbps,5:F1} GB/s  bound {r.bound_tokens_per_second,8:F1} tok/s ({r.fraction_of_bound:P0})");
            }
            return 0;
        });
        return new Command("bench", "Benchmarks.") { decode };
    }
}
