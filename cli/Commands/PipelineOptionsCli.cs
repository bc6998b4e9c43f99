using System.CommandLine;
using Sio.Pipeline;

namespace Sio.Cli;

/// <summary>The options `sio optimize` and `sio up` share: recipe, dataset, gates, benchmark settings, price, store.</summary>
public sealed class PipelineOptionsCli
{
    /// <summary>Defaults are the request's own (<see cref="BenchmarkSettings"/>, <see cref="Pipeline.Recipe.Default"/>): they exist once.</summary>
    static readonly BenchmarkSettings Bench = new();

    public Option<string> Recipe { get; } = new("--recipe") { Description = $"Techniques, {Pipeline.Recipe.Help}.", DefaultValueFactory = _ => Pipeline.Recipe.Default };
    public Option<string?> Gate { get; } = new("--gate") { Description = "Quality and cost gate: max-perplexity-increase=PCT,min-speedup=X,max-price=$PER1M,max-kld=NATS (mean KL divergence from the baseline per token),min-top1=RATE (0-1: how often the variant's top token is the baseline's) (default max-perplexity-increase=10,min-speedup=1)." };
    public Option<string> Target { get; } = TargetOption();
    public Option<string> Concurrency { get; } = new("--concurrency") { Description = "Concurrency levels each variant is measured at.", DefaultValueFactory = _ => string.Join(",", Bench.Concurrency) };
    public Option<int> Requests { get; } = new("--requests") { Description = "Requests per concurrency level.", DefaultValueFactory = _ => Bench.Requests };
    public Option<int> MaxNew { get; } = new("--max-new-tokens") { Description = "New tokens per benchmark request.", DefaultValueFactory = _ => Bench.MaxNewTokens };
    public Option<string?> Instance { get; } = new("--instance") { Description = "Instance from the price catalogue (default: its first entry)." };
    public Option<double?> Price { get; } = new("--price-per-hour") { Description = "Instance price in $/hour (overrides the catalogue)." };
    public Option<string?> Store { get; } = new("--store") { Description = "Artifact store: a folder or a Blob Storage connection string (UseDevelopmentStorage=true for Azurite); default $SIO_STORE, else $SIO_HOME/store. Prefer $SIO_STORE for a connection string: a command line is visible to every local user." };
    public Option<string?> WorkDir { get; } = new("--work-dir") { Description = "Local folder for materialized artifacts (default $SIO_HOME/work)." };

    public IEnumerable<Option> All => [Recipe, Gate, Target, Concurrency, Requests, MaxNew, Instance, Price, Store, WorkDir];

    static Option<string> TargetOption()
    {
        var o = new Option<string>("--target")
        {
            Description = "How the gate chooses among the variants that pass: stack (the most techniques stacked, the recipe as asked), latency (lowest time per output token at concurrency 1), throughput (most output tokens/s at any level) or cost (lowest $ per 1M tokens).",
            DefaultValueFactory = _ => "stack",
        };
        o.AcceptOnlyFromAmong(QualityGate.Targets);
        return o;
    }

    public OptimizationRequest Request(ParseResult p, string model, string? tokenizer, string dataset) => new()
    {
        Model = model, Tokenizer = tokenizer, Dataset = dataset, Recipe = p.GetValue(Recipe)!, Gates = ParseGate(p.GetValue(Gate)),
        Benchmark = new BenchmarkSettings { Concurrency = Cli.IntList("--concurrency", p.GetValue(Concurrency)!), Requests = p.GetValue(Requests), MaxNewTokens = p.GetValue(MaxNew) },
        Instance = p.GetValue(Instance), PricePerHour = p.GetValue(Price), Target = p.GetValue(Target) is "stack" ? null : p.GetValue(Target),
    };

    public static QualityGates ParseGate(string? spec)
    {
        var g = new QualityGates();
        if (string.IsNullOrWhiteSpace(spec)) return g;
        foreach (var part in spec.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var kv = part.Split('=', 2);
            double? v = kv.Length == 2 && kv[1] is not ("none" or "")
                ? double.TryParse(kv[1], System.Globalization.CultureInfo.InvariantCulture, out var d) ? d : throw new SioException($"--gate: '{part}' needs a number after '='")
                : kv.Length == 2 ? null : throw new SioException($"--gate: '{part}' must be NAME=VALUE");
            g = kv[0] switch
            {
                "max-perplexity-increase" => g with { MaxPerplexityIncreasePercent = v },
                "min-speedup" => g with { MinSpeedup = v },
                "max-price" => g with { MaxPricePerMillionTokens = v },
                "max-kld" => g with { MaxKld = v },
                "min-top1" => g with { MinSameTopToken = v },
                _ => throw new SioException($"--gate: unknown gate '{kv[0]}'; use max-perplexity-increase, min-speedup, max-price, max-kld or min-top1"),
            };
        }
        return g;
    }
}
