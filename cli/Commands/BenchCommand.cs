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
        var spinning = new Option<string>("--spinning") { Description = "ONNX Runtime's idle threads spin between operators (on, sio's default), sleep (off), or both, each model measured both ways.", DefaultValueFactory = _ => "on" };
        var engine = new Option<string>("--engine") { Description = "What runs the decode steps: onnx (ONNX Runtime), native (sio's own C# decoder on the CPU, as sio generate --engine native; prompts still prefill in ONNX Runtime), or both, each model measured both ways.", DefaultValueFactory = _ => "onnx" };
        var json = new Option<bool>("--json") { Description = "Print the results as JSON." };
        var decode = new Command("decode", "Prefill and decode tokens/s at batch 1, beside the memory-bandwidth bound measured in the same run.")
        {
            dirs, promptTokens, tokens, runs, threads, spinning, engine, json,
        };
        decode.SetAction(p =>
        {
            var options = new DecodeBenchmarkOptions
            {
                PromptTokens = p.GetValue(promptTokens), DecodeTokens = p.GetValue(tokens), Runs = p.GetValue(runs), Threads = p.GetValue(threads), MeasureBandwidth = true,
            };
            bool[] spins = p.GetValue(spinning) switch
            {
                "on" => [true],
                "off" => [false],
                "both" => [false, true],
                var v => throw new SioException($"--spinning must be on, off or both, got '{v}'"),
            };
            string[] engines = p.GetValue(engine) switch
            {
                "onnx" => ["onnx"],
                "native" => ["native"],
                "both" => ["onnx", "native"],
                var v => throw new SioException($"--engine must be onnx, native or both, got '{v}'"),
            };
            var results = new List<(string Model, bool Spinning, string Engine, DecodeBenchmarkResult Result)>();
            foreach (var dir in p.GetValue(dirs)!)
                foreach (var spin in spins)
                    foreach (var e in engines)
                    {
                        using var model = Model.Load(dir, new ModelOptions { Threads = options.Threads, AllowSpinning = spin, Engine = e });
                        results.Add((Path.GetFullPath(dir), spin, model.Engine, DecodeBenchmark.Run(model, options, Cli.Progress($"bench {Path.GetFileName(dir.TrimEnd('/'))}"))));
                    }
            Cli.EndProgress();
            var first = results[0].Result;
            var rows = results.Select(r => new
            {
                model = r.Model,
                spinning = r.Spinning,
                engine = r.Engine,
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
                    o.WriteLine($"{Path.GetFileName(r.model) + (spins.Length > 1 ? r.spinning ? " (spin)" : " (sleep)" : "") + (engines.Length > 1 || r.engine != "onnx" ? r.engine == "onnx" ? " (onnx)" : " (native)" : ""),-28} prefill {r.prefill_tokens_per_second,9:F1} tok/s  decode {r.decode_tokens_per_second,8:F1} tok/s ({r.decode_speedup:F2}x)  " +
                        $"weights {r.weight_bytes_per_token / 1e6,7:F1} MB/token  bandwidth {r.bandwidth_gbps,5:F1} GB/s  bound {r.bound_tokens_per_second,8:F1} tok/s ({r.fraction_of_bound:P0})");
            }
            return 0;
        });
        return new Command("bench", "Micro-benchmarks: decode speed against the bandwidth bound, drafters side by side, cold starts, tokenizer speed.") { decode, Speculative(), ColdStart(), Tokenize(), Checkpoint() };
    }

    static Command ColdStart()
    {
        var dirs = new Argument<string[]>("models") { Arity = ArgumentArity.OneOrMore, Description = "Model folders (e.g. the original and its compiled copy), measured interleaved in one run." };
        var runs = new Option<int>("--runs") { Description = "Process starts per model; medians are reported.", DefaultValueFactory = _ => 7 };
        var builds = new Option<string?>("--sio") { Description = "Comma-separated sio builds to start instead of this one (the sio executable or sio.dll of a build or publish folder, e.g. a ReadyToRun publish beside the plain build), interleaved with the models." };
        var withEnv = new Option<string?>("--with-env") { Description = "NAME=VALUE: also start every build and model with this environment variable, interleaved (e.g. GLIBC_TUNABLES=glibc.malloc.hugetlb=1 for transparent huge pages)." };
        var json = new Option<bool>("--json") { Description = "Print the results as JSON." };
        var cmd = new Command("coldstart", "Cold start: a new `sio generate --max-tokens 1` process per run, from process start to its first token (reading the model included; the OS file cache stays warm).")
        {
            dirs, runs, builds, withEnv, json,
        };
        cmd.SetAction(p =>
        {
            var folders = p.GetValue(dirs)!;
            var sio = (p.GetValue(builds) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var results = ColdStartBenchmark.Run(folders, p.GetValue(runs), sio, p.GetValue(withEnv), Cli.Progress("bench"));
            Cli.EndProgress();
            var o = p.InvocationConfiguration.Output;
            var first = results[0];
            if (p.GetValue(json))
                Cli.WriteJson(o, new
                {
                    machine = new { cores = Environment.ProcessorCount, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription, hardware = Compilation.HardwareFingerprint.Description },
                    runs = p.GetValue(runs),
                    models = results.Select(r => new
                    {
                        sio = r.Sio ?? Environment.ProcessPath, env = r.Env, model = r.Model, graph = r.Graph, cold_start_ms = r.ColdStartMs, load_ms = r.LoadMs, first_token_ms = r.FirstTokenMs,
                        reduction = 1 - r.ColdStartMs / first.ColdStartMs,
                    }),
                });
            else
                foreach (var r in results)
                    o.WriteLine($"{(results.Any(x => x.Sio is not null || x.Env is not null) ? $"{(r.Sio is null ? "this sio" : ShortBuild(r.Sio)) + (r.Env is null ? "" : " +env"),-26}" : "")}{Path.GetFileName(r.Model.TrimEnd('/')),-24} {r.Graph,-16} cold start {r.ColdStartMs,7:F0} ms (session load {r.LoadMs,6:F0} ms, first token {r.FirstTokenMs,5:F1} ms)  {(1 - r.ColdStartMs / first.ColdStartMs):P0} lower than the first");
            return 0;
        });
        return cmd;
    }

    /// <summary>A build's folder and file, enough to tell builds apart: "publish-r2r/sio".</summary>
    static string ShortBuild(string path) => Path.Combine(Path.GetFileName(Path.GetDirectoryName(path)) ?? "", Path.GetFileName(path));

    static Command Speculative()
    {
        var dir = new Argument<string>("model") { Description = "The target model folder." };
        var dataset = new Option<string>("--dataset") { Description = "Prompts: text rows are cut to --prompt-tokens; prompt/response rows use their prompt.", Required = true };
        var drafters = new Option<string>("--drafters") { Description = "Comma-separated drafters: none, ngram, self-int4, draft:DIR.", DefaultValueFactory = _ => "none,ngram,self-int4" };
        var prompts = new Option<int>("--prompts") { Description = "Prompts measured (after one warm-up prompt).", DefaultValueFactory = _ => 20 };
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "Tokens kept of a text row as its prompt.", DefaultValueFactory = _ => 48 };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Most tokens generated per prompt.", DefaultValueFactory = _ => 200 };
        var draftTokens = new Option<string>("--draft-tokens") { Description = "1–32 or auto.", DefaultValueFactory = _ => "auto" };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime intra-op threads (0: one per core).", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print the results as JSON." };
        var cmd = new Command("speculative", "Greedy decode tokens/s with and without each drafter on the same prompts, with acceptance, tokens per target step and whether the output equals plain decoding.")
        {
            dir, dataset, drafters, prompts, promptTokens, maxTokens, draftTokens, threads, json,
        };
        cmd.SetAction(p =>
        {
            var drafterNames = p.GetValue(drafters)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            // one target for every drafter: no spinning if any of them is a model (and so for all, to compare like with like)
            var modelOptions = drafterNames.Aggregate(new ModelOptions { Threads = p.GetValue(threads) }, (o, d) => o.ForDrafter(new Speculative.SpeculativeOptions { Drafter = d }));
            using var model = Model.Load(p.GetValue(dir)!, modelOptions);
            var data = Evaluation.DatasetReader.Read(p.GetValue(dataset)!);
            var results = SpeculativeBenchmark.Run(model, data, drafterNames,
                new SpeculativeBenchmarkOptions
                {
                    Prompts = p.GetValue(prompts), PromptTokens = p.GetValue(promptTokens), MaxTokens = p.GetValue(maxTokens),
                    DraftTokens = Sio.Speculative.SpeculativeOptions.ParseDraftTokens(p.GetValue(draftTokens)), Threads = p.GetValue(threads),
                }, modelOptions, Cli.Progress("bench"));
            Cli.EndProgress();
            var o = p.InvocationConfiguration.Output;
            if (p.GetValue(json))
                Cli.WriteJson(o, new
                {
                    model = Path.GetFullPath(p.GetValue(dir)!),
                    machine = new { cores = Environment.ProcessorCount, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription },
                    dataset = data.Path, dataset_sha256 = data.Sha256,
                    results = results.Select(r => new
                    {
                        drafter = r.Drafter, prompts = r.Prompts, tokens = r.Tokens, decode_tokens_per_second = r.DecodeTokensPerSecond, speedup = r.Speedup,
                        identical_to_plain = r.IdenticalToPlain, speculative = GenerateCommand.SpeculativeJson(r.Stats),
                    }),
                });
            else
                foreach (var r in results)
                    o.WriteLine($"{r.Drafter,-20} decode {r.DecodeTokensPerSecond,9:F1} tok/s  {r.Speedup,5:F2}x  acceptance {r.Stats.AcceptanceRate,6:P1}  " +
                        $"tokens/step {r.Stats.MeanAcceptedLength,5:F2}  draft length {r.Stats.MeanDraftLength,5:F2}  identical {(r.IdenticalToPlain ? "yes" : "NO")}  ({r.Tokens} tokens, {r.Prompts} prompts)");
            return 0;
        });
        return cmd;
    }

    static Command Tokenize()
    {
        var source = new Argument<string>("tokenizer") { Description = "A sio model folder, a Hugging Face folder or a tokenizer file." };
        var file = new Option<string>("--file") { Description = "The text to encode, as one string (a long prompt).", Required = true };
        var repeat = new Option<int>("--repeat") { Description = "Encode the text repeated this many times, to show that time grows linearly with length.", DefaultValueFactory = _ => 1 };
        var runs = new Option<int>("--runs") { Description = "Measured runs after one warm-up; the median is reported.", DefaultValueFactory = _ => 3 };
        var cmd = new Command("tokenize", "Encoding speed in MB/s of UTF-8 (special-token markers parsed, as a chat prompt is), median of runs.") { source, file, repeat, runs };
        cmd.SetAction(p =>
        {
            var tokenizer = Tokenization.TokenizerLoader.Open(p.GetValue(source)!, out _);
            var path = p.GetValue(file)!;
            if (!File.Exists(path)) throw SioException.InFile(path, "file not found");
            if (p.GetValue(repeat) < 1 || p.GetValue(runs) < 1) throw new SioException("--repeat and --runs must be ≥ 1");
            var text = string.Concat(Enumerable.Repeat(File.ReadAllText(path), p.GetValue(repeat)));
            long bytes = System.Text.Encoding.UTF8.GetByteCount(text);
            int tokens = tokenizer.EncodeWithSpecialTokens(text, addBos: false).Count;
            var seconds = new List<double>();
            for (int r = 0; r < p.GetValue(runs); r++)
            {
                var clock = System.Diagnostics.Stopwatch.StartNew();
                tokenizer.EncodeWithSpecialTokens(text, addBos: false);
                seconds.Add(clock.Elapsed.TotalSeconds);
            }
            double median = seconds.Order().ElementAt(seconds.Count / 2);
            p.InvocationConfiguration.Output.WriteLine($"{tokenizer.Format}: {bytes / 1e6:F2} MB, {tokens} tokens, {median * 1000:F0} ms, {bytes / 1e6 / median:F2} MB/s");
            return 0;
        });
        return cmd;
    }

    /// <summary>`sio bench checkpoint`: a synthetic Hugging Face folder of a real model's shape, to measure import and quantization at scale.</summary>
    static Command Checkpoint()
    {
        var shape = new Option<string>("--shape") { Description = "llama3.2-1b: Llama-3.2-1B's shape (16 layers, 2048 wide, 8192 hidden, 32 query / 8 KV heads, 128,256 tokens, llama3 rope scaling, tied embeddings; context cut to 4096).", DefaultValueFactory = _ => "llama3.2-1b" };
        var dtype = new Option<string>("--dtype") { Description = "F32, F16 or BF16.", DefaultValueFactory = _ => "BF16" };
        var output = new Option<string>("--out") { Description = "The folder to write (config.json + model.safetensors; random weights).", Required = true };
        var cmd = new Command("checkpoint", "Write a synthetic Hugging Face checkpoint of a real model's shape (random weights: for speed and memory measurements only).") { shape, dtype, output };
        cmd.SetAction(p =>
        {
            var config = p.GetValue(shape) switch
            {
                "llama3.2-1b" => new Models.DecoderConfig
                {
                    Dim = 2048, HiddenDim = 8192, Layers = 16, Heads = 32, KvHeads = 8, VocabSize = 128256, ContextLength = 4096, HeadSize = 64,
                    RopeTheta = 500000f, RopeScaling = new Models.RopeScaling("llama3", 32, 1, 4, 8192), TiedEmbeddings = true,
                    BosTokenId = 128000, EosTokenId = 128001,
                },
                var s => throw new SioException($"--shape must be llama3.2-1b, got '{s}'"),
            };
            var dt = p.GetValue(dtype)!.ToUpperInvariant();
            if (dt is not ("F32" or "F16" or "BF16")) throw new SioException($"--dtype must be F32, F16 or BF16, got '{p.GetValue(dtype)}'");
            Models.HuggingFaceExporter.Export(new Models.SyntheticCheckpoint(config, 1), p.GetValue(output)!, dt);
            p.InvocationConfiguration.Output.WriteLine($"{p.GetValue(output)}: {config.ParameterCount / 1e9:F2}B parameters, {dt}");
            return 0;
        });
        return cmd;
    }
}
