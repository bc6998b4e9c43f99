using System.CommandLine;
using System.Text.Json;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.DependencyInjection;
using Sio.Artifacts;
using Sio.Cli.Hosting;
using Sio.Pipeline;
using Sio.Recommendation;

namespace Sio.Cli;

/// <summary>`sio recommend`: the recommendation job in-process (the same orchestration as POST /api/recommendations), then its ranked entries.</summary>
public static class RecommendCommand
{
    static readonly RecommendationRequest Defaults = new();

    public static Command Create()
    {
        var source = new Argument<string>("model") { Description = "A llama2.c .bin, a Hugging Face folder, a sio model folder, or a .zip of one." };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "A tokenizer file overriding the one beside the model." };
        var dataset = new Option<string>("--dataset") { Description = "Your data (JSONL or text): even records calibrate (AWQ, the datastore drafter), odd records measure quality and are the workload's prompts.", Required = true };
        var target = new Option<string>("--target") { Description = $"What to rank by: {RecommendationRequest.TargetHelp}.", DefaultValueFactory = _ => Defaults.Target };
        target.AcceptOnlyFromAmong(RecommendationRequest.Targets);
        var input = new Option<string?>("--input-tokens") { Description = "Prompt lengths of the workload, MEAN±SPREAD (e.g. 550±150), cut from your data; default: your data's prompts as they are." };
        var output = new Option<string?>("--output-tokens") { Description = "Answer lengths, MEAN±SPREAD (default 64)." };
        var slo = new Option<string?>("--slo") { Description = "Latency objectives every recommended level keeps at p99, e.g. ttft=500ms,tpot=30ms (also e2e=2s)." };
        var quality = new Option<string>("--quality") { Description = "Quality budget against the float model: kld=NATS (mean KL divergence), top1=RATE (same top token), ppl=+PCT% (perplexity increase); 'none' for no limit.", DefaultValueFactory = _ => Defaults.Quality! };
        var instances = new Option<string?>("--instances") { Description = "Catalogue instances to consider, comma-separated (default: all; only those this machine's measurements stand for are ranked)." };
        var rate = new Option<double?>("--request-rate") { Description = "Requests per second the deployment must sustain: each entry gets the replicas it needs." };
        var budget = new Option<string>("--budget") { Description = "Wall-clock budget of the search (e.g. 30m, 90s, 1h).", DefaultValueFactory = _ => Defaults.Budget };
        var requests = new Option<int>("--requests") { Description = "Requests per concurrency limit and run in the load stage.", DefaultValueFactory = _ => Defaults.Requests };
        var runs = new Option<int>("--runs") { Description = "Runs of each load level (2 or more: 95 % confidence intervals).", DefaultValueFactory = _ => Defaults.Runs };
        var quant = new Option<string>("--quantization") { Description = "Quantizations searched: none, METHOD-intBITS[:gGROUP] (rtn-int8, rtn-int4:g128, awq-int4:g32, …), or METHOD-mixed[:gGROUP] (4 or 8 bits per decoder layer, the smallest mix within --quality's kld).", DefaultValueFactory = _ => string.Join(",", Defaults.Space.Quantization) };
        var drafters = new Option<string>("--drafters") { Description = "Drafters searched: none, ngram, datastore, draft:PATH.", DefaultValueFactory = _ => string.Join(",", Defaults.Space.Drafters) };
        var engines = new Option<string>("--engines") { Description = "Engines searched: onnx, native.", DefaultValueFactory = _ => string.Join(",", Defaults.Space.Engines) };
        var concurrency = new Option<string>("--concurrency") { Description = "Concurrency limits searched.", DefaultValueFactory = _ => string.Join(",", Defaults.Space.Concurrency) };
        var finalists = new Option<int>("--finalists") { Description = "Candidates taken from the batch-1 screen to the load stage.", DefaultValueFactory = _ => Defaults.Space.Finalists };
        var outDir = new Option<string?>("--out") { Description = "Also write recommendation.json and recommendation.md to this folder." };
        var json = new Option<bool>("--json") { Description = "Print the recommendation as JSON." };
        var store = new Option<string?>("--store") { Description = "Artifact store: a folder or a Blob Storage connection string (default $SIO_STORE, else $SIO_HOME/store); what `sio up` on the same store can deploy." };
        var workDir = new Option<string?>("--work-dir") { Description = "Local folder for materialized artifacts (default $SIO_HOME/work)." };
        var cmd = new Command("recommend", "Search the configurations sio can build for your model and workload (quantization × classifier × drafter × engine × concurrency limit × instance), screen them cheaply (quality, batch-1 speed), measure the finalists under load within the budget, and rank deployable entries for the target with confidence intervals, the Pareto front and why each other candidate lost. Exit 0 with at least one entry, 3 with none.")
        {
            source, tokenizer, dataset, target, input, output, slo, quality, instances, rate, budget, requests, runs, quant, drafters, engines, concurrency, finalists, outDir, json, store, workDir,
        };
        cmd.SetAction(async (p, ct) =>
        {
            static string[] List(string? s) => s is null ? [] : s.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            var request = new RecommendationRequest
            {
                Model = p.GetValue(source)!, Tokenizer = p.GetValue(tokenizer), Dataset = p.GetValue(dataset)!, Target = p.GetValue(target)!,
                InputTokens = p.GetValue(input), OutputTokens = p.GetValue(output), Slo = p.GetValue(slo), Quality = p.GetValue(quality),
                Instances = p.GetValue(instances) is { } i ? List(i) : null, RequestRate = p.GetValue(rate), Budget = p.GetValue(budget)!,
                Requests = p.GetValue(requests), Runs = p.GetValue(runs),
                Space = Defaults.Space with
                {
                    Quantization = List(p.GetValue(quant)),
                    Drafters = List(p.GetValue(drafters)),
                    Engines = List(p.GetValue(engines)),
                    Concurrency = Cli.IntList("--concurrency", p.GetValue(concurrency)!),
                    Finalists = p.GetValue(finalists),
                },
            };
            if (request.Problems() is { Count: > 0 } problems) throw new SioException(string.Join("; ", problems.Select(x => $"{Flag(x.Key)}: {string.Join("; ", x.Value)}")));
            var err = p.InvocationConfiguration.Error;
            await using var app = PipelineHost.Build(new PipelineHostConfig { Api = false, AllowLocalPaths = true, Store = p.GetValue(store), WorkDir = p.GetValue(workDir) });
            await app.StartAsync(ct);
            var api = app.Services.GetRequiredService<OptimizationApi>().Recommendations;
            var started = await api.StartAsync(request, "", ct);
            if (started.Status != 202) throw new SioException(System.Text.Json.Nodes.JsonNode.Parse(JsonSerializer.Serialize(started.Body))?["detail"]?.GetValue<string>() ?? $"HTTP {started.Status}");
            string[] progress = ["built ", "could not build ", "screened ", "measured "];
            var m = await RunFollower.FollowAsync(app.Services, request.InstanceId(), "recommendation", err, e => progress.Any(e.StartsWith), ct);
            if (m.RuntimeStatus != OrchestrationRuntimeStatus.Completed) throw new SioException($"recommendation {m.InstanceId} {m.RuntimeStatus}: {m.FailureDetails?.ErrorMessage}");
            var storeApi = app.Services.GetRequiredService<IObjectStore>();
            var text = (await storeApi.GetTextAsync(Containers.Reports, $"{m.InstanceId}/recommendation.json", ct))!;
            var markdown = (await storeApi.GetTextAsync(Containers.Reports, $"{m.InstanceId}/recommendation.md", ct))!;
            var rec = JsonSerializer.Deserialize<Recommendation.Recommendation>(text, RecommendationRequest.Json)!;
            if (p.GetValue(outDir) is { } dir) Write(dir, text, markdown);
            var artifacts = app.Services.GetRequiredService<ArtifactRepository>();
            var serve = new List<string>();
            foreach (var e in rec.Ranked.Take(3))
                serve.Add($"#{e.Rank}: sio serve {await artifacts.MaterializeAsync(e.ModelKey)} {e.Serve.Replace(e.Drafter, await artifacts.LocalDrafterAsync(e.Drafter))}");
            await app.StopAsync(CancellationToken.None);
            var o = p.InvocationConfiguration.Output;
            if (p.GetValue(json)) o.WriteLine(text);
            else
            {
                o.Write(TerminalReport.Render(markdown, TerminalReport.Width()));
                if (serve.Count > 0) o.WriteLine($"\nserve an entry:\n  {string.Join("\n  ", serve)}");
            }
            return rec.Ranked.Count > 0 ? 0 : 3;
        });
        return cmd;
    }

    static void Write(string dir, string json, string markdown)
    {
        if (File.Exists(dir)) throw SioException.InFile(dir, "--out must be a folder");
        Directory.CreateDirectory(dir);
        foreach (var (name, content) in new[] { ("recommendation.json", json), ("recommendation.md", markdown) })
        {
            var temp = Path.Combine(dir, $".{name}.tmp");
            File.WriteAllText(temp, content);
            File.Move(temp, Path.Combine(dir, name), overwrite: true);
        }
    }

    static string Flag(string field) => field switch
    {
        "inputTokens" => "--input-tokens",
        "outputTokens" => "--output-tokens",
        "requestRate" => "--request-rate",
        "dataset" => "--dataset",
        "model" => "model",
        _ when field.StartsWith("space.") => "--" + field[6..] switch { "quantization" => "quantization", "drafters" => "drafters", "engines" => "engines", "concurrency" => "concurrency", "finalists" => "finalists", "" => "search space", var f => f },
        _ => "--" + field,
    };
}
