using System.CommandLine;
using Sio.Benchmarking;
using Sio.Generation;
using Sio.Speculative;

namespace Sio.Cli;

public static class BenchmarkCommand
{
    public static Command Create()
    {
        var dir = new Argument<string>("model") { Description = "The model folder to measure." };
        var dataset = new Option<string>("--dataset") { Description = "Your prompts: JSONL with prompt or text, OpenOrca {system_prompt,question,response}, ShareGPT or OpenAI chat messages.", Required = true };
        var concurrency = new Option<string>("--concurrency") { Description = "Comma-separated concurrency levels.", DefaultValueFactory = _ => "1,2,4,8,16" };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Most new tokens per request.", DefaultValueFactory = _ => 250 };
        var requests = new Option<int>("--requests") { Description = "Requests per concurrency level.", DefaultValueFactory = _ => 32 };
        var duration = new Option<double?>("--duration") { Description = "Seconds per level instead of a request count." };
        var pmin = new Option<int>("--prompt-tokens-min") { Description = "Shortest prompt used, in the model's tokens.", DefaultValueFactory = _ => 500 };
        var pmax = new Option<int>("--prompt-tokens-max") { Description = "Longest prompt used, in the model's tokens.", DefaultValueFactory = _ => 1000 };
        var speculative = new Option<string>("--speculative") { Description = "Drafter: none, ngram, self-int4, draft:DIR, datastore, datastore:FILE.", DefaultValueFactory = _ => "none" };
        var draftTokens = new Option<string>("--draft-tokens") { Description = "1–32 or auto.", DefaultValueFactory = _ => "auto" };
        var stopAtEos = new Option<bool>("--stop-at-eos") { Description = "End a request at the model's EOS (default: always generate --max-new-tokens, so every level does the same work)." };
        var endpoint = new Option<string?>("--endpoint") { Description = "Measure a running OpenAI-compatible server (e.g. `sio serve`) over HTTP instead of the engine in-process; MODEL must be the folder it serves (its tokenizer selects the prompts)." };
        var rates = new Option<string?>("--request-rate") { Description = "Open loop: comma-separated request rates (requests per second); requests arrive on that schedule whether or not earlier ones are answered, instead of --concurrency workers waiting for their answers." };
        var burstiness = new Option<double>("--burstiness") { Description = "Open loop: shape of the gamma distribution of gaps between arrivals (1: Poisson; under 1 burstier, over 1 steadier).", DefaultValueFactory = _ => 1 };
        var maxBatch = new Option<int>("--max-batch") { Description = "Open loop in-process: rows of sio's batching engine (what `sio serve --max-concurrent` would be).", DefaultValueFactory = _ => 8 };
        var slo = new Option<string?>("--slo") { Description = "Latency objectives for goodput, per request: ttft=500ms,tpot=30ms[,e2e=20s] (MLPerf's interactive Llama 3.1 8B: ttft=500ms,tpot=30ms). Goodput: requests per second that met every one." };
        var runs = new Option<int>("--runs") { Description = "Runs per level; with 2 or more, throughput and goodput get 95 % confidence intervals.", DefaultValueFactory = _ => 1 };
        var seed = new Option<int>("--seed") { Description = "Seed of the open-loop arrival schedule (run i uses seed + i).", DefaultValueFactory = _ => 1 };
        var baseline = new Option<string?>("--baseline") { Description = "A baseline model folder: swept too, side by side, and compared for quality." };
        var instance = new Option<string?>("--instance") { Description = $"Instance from the price catalogue ({string.Join(", ", Pricing.Catalogue().Select(i => i.Name))}); default {Pricing.Catalogue()[0].Name}." };
        var price = new Option<double?>("--price-per-hour") { Description = "Instance price in $/hour (overrides the catalogue)." };
        var discount = new Option<double>("--discount") { Description = "Discount off the hourly price, 0–1 (reserved or spot capacity).", DefaultValueFactory = _ => 0 };
        var bound = new Option<double?>("--latency-bound-ms") { Description = "The p50 ITL bound of the balanced preset (default: twice the lowest)." };
        var output = new Option<string>("--out") { Description = $"The report folder: report.json, report.md, {string.Join(", ", Charts.All)}.", Required = true };
        var json = new Option<bool>("--json") { Description = "Print report.json." };
        var cmd = new Command("benchmark", "Load sweep on your data, in-process against the engine or over HTTP against a server, closed loop (concurrency) or open loop (Poisson or bursty arrivals at request rates): TTFT, TPOT, ITL and E2E percentiles, throughput and goodput with confidence intervals over --runs, $/1M tokens from the measured throughput, quality against a baseline (KL divergence, same top token, perplexity, agreement), charts and preset configurations.")
        {
            dir, dataset, concurrency, rates, burstiness, maxBatch, slo, runs, seed, maxNew, requests, duration, pmin, pmax, speculative, draftTokens, stopAtEos, endpoint, baseline, instance, price, discount, bound, output, json,
        };
        cmd.SetAction(p =>
        {
            var levels = Cli.IntList("--concurrency", p.GetValue(concurrency)!);
            var config = new LoadBenchmarkConfig
            {
                Concurrency = levels, MaxNewTokens = p.GetValue(maxNew), Requests = p.GetValue(requests), DurationSeconds = p.GetValue(duration),
                PromptTokensMin = p.GetValue(pmin), PromptTokensMax = p.GetValue(pmax), StopAtEos = p.GetValue(stopAtEos),
                Endpoint = p.GetValue(endpoint) is string e ? (Uri.TryCreate(e.EndsWith('/') ? e : e + "/", UriKind.Absolute, out var u) && u.Scheme is "http" or "https" ? u : throw new SioException($"--endpoint must be an http(s) URL, got '{e}'")) : null,
                Speculative = new SpeculativeOptions { Drafter = p.GetValue(speculative)!, DraftTokens = SpeculativeOptions.ParseDraftTokens(p.GetValue(draftTokens)) },
                RequestRates = p.GetValue(rates) is string r ? Cli.DoubleList("--request-rate", r) : null, Burstiness = p.GetValue(burstiness), MaxBatch = p.GetValue(maxBatch),
                Slo = p.GetValue(slo) is string s ? LatencySlo.Parse(s) : null, Runs = p.GetValue(runs), Seed = p.GetValue(seed),
            };
            var request = new BenchmarkReport.Request(p.GetValue(dir)!, p.GetValue(dataset)!, config, p.GetValue(baseline),
                Pricing.Resolve(p.GetValue(instance), p.GetValue(price)), p.GetValue(discount), p.GetValue(bound));
            var outDir = BenchmarkReport.Run(request, p.GetValue(output)!, Cli.Progress("benchmark"));
            Cli.EndProgress();
            var o = p.InvocationConfiguration.Output;
            if (p.GetValue(json)) o.WriteLine(File.ReadAllText(Path.Combine(outDir, "report.json")));
            else o.WriteLine(TerminalReport.Render(File.ReadAllText(Path.Combine(outDir, "report.md")).Split("## Preset")[0], TerminalReport.Width()) + $"\nreport → {outDir}");
            return 0;
        });
        return cmd;
    }
}
