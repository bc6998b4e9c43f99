using System.Collections.Concurrent;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Sio.Artifacts;
using Sio.Benchmarking;
using Sio.Compilation;
using Sio.Evaluation;
using Sio.Generation;
using Sio.Models;
using Sio.Quantization;
using Sio.Speculative;

namespace Sio.Pipeline;

/// <summary>Where a pipeline keeps its data: the store, a local work folder, and who hears of deployments.</summary>
public sealed record PipelineOptions
{
    public required IObjectStore Store { get; init; }
    /// <summary>Local folder where artifacts are materialized and built.</summary>
    public required string WorkDir { get; init; }
    /// <summary>Whether requests may name local paths (the self-host and the CLI) or only uploads/NAME (Azure).</summary>
    public bool AllowLocalPaths { get; init; }
    /// <summary>Largest upload accepted, in bytes.</summary>
    public long MaxUploadBytes { get; init; } = 8L << 30;
    public IDeploymentEvents? Events { get; init; }
    public ModelOptions ModelOptions { get; init; } = new();
}

/// <summary>
/// The bodies of the pipeline's activities. Each is idempotent: its output key is a hash of its
/// inputs, and when the store already holds that key the work is not redone ("reused"). Artifacts
/// are built in the work folder and published whole (files first, manifest last).
/// </summary>
public sealed class PipelineSteps(PipelineOptions options)
{
    public const string ModelsPrefix = "models", DatasetsPrefix = "datasets", MeasurementsPrefix = "measurements";
    // One measurement at a time on this machine: concurrent benchmarks would measure each other.
    static readonly SemaphoreSlim MeasurementLock = new(1, 1);
    readonly ConcurrentDictionary<string, SemaphoreSlim> _keyLocks = new();
    public PipelineOptions Options => options;
    IObjectStore Store => options.Store;

    static string Hash(params object?[] parts) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join("\n", parts.Select(p => p?.ToString() ?? "")))))[..32];

    async Task<T> Locked<T>(string key, Func<Task<T>> work)
    {
        var gate = _keyLocks.GetOrAdd(key, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync();
        try { return await work(); } finally { gate.Release(); }
    }

    // ---- references ---------------------------------------------------------------------------

    public const string ModelRefPrefix = Containers.Artifacts + "/" + ModelsPrefix + "/";

    /// <summary>Whether an upload is a model that starts a run (a .zip, or a llama2.c .bin that is not a tok*.bin tokenizer).</summary>
    public static bool IsModelUpload(string name)
    {
        var file = Path.GetFileName(name).ToLowerInvariant();
        return file.EndsWith(".zip") || (file.EndsWith(".bin") && !file.StartsWith("tok"));
    }

    /// <summary>The key of an "artifacts/models/KEY" reference (a model already imported), else null.</summary>
    public static string? ArtifactKey(string reference) =>
        reference.StartsWith(ModelRefPrefix) && reference.Length > ModelRefPrefix.Length && !reference[ModelRefPrefix.Length..].Contains('/') ? reference[ModelRefPrefix.Length..] : null;

    /// <summary>
    /// The pipeline's retrieval drafter: a self-distilled datastore (the calibration records plus the model's own greedy
    /// continuations of their openings), built once per model and dataset, stored as artifacts/datastores/KEY.jsonl.
    /// </summary>
    async Task<string> DatastoreAsync(ModelArtifact model, string folder, StagedDataset dataset)
    {
        var name = $"datastores/{Hash("datastore/1", model.Key, dataset.Sha256)}.jsonl";
        await Locked(name, async () =>
        {
            if (await Store.ExistsAsync(Containers.Artifacts, name)) return true;
            var calibration = DatasetReader.Read(await DatasetFile(dataset.CalibrationKey));
            var file = Path.Combine(options.WorkDir, "build", Guid.NewGuid().ToString("N") + ".jsonl");
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            try
            {
                using (var m = Model.Load(folder, options.ModelOptions)) DatastoreBuilder.Build(m, calibration, file, [8, 16, 32], 256);
                await Store.UploadAsync(Containers.Artifacts, name, file);
            }
            finally { File.Delete(file); }
            return true;
        });
        return $"datastore:{Containers.Artifacts}/{name}";
    }

    /// <summary>A drafter as the engine takes it: draft:artifacts/models/KEY becomes draft:LOCAL-FOLDER, datastore:artifacts/… a local file.</summary>
    public async Task<string> LocalDrafter(string drafter)
    {
        if (drafter.StartsWith($"datastore:{Containers.Artifacts}/"))
            return "datastore:" + await DatasetFile(drafter[$"datastore:{Containers.Artifacts}/".Length..]);
        if (!drafter.StartsWith("draft:")) return drafter;
        var reference = drafter["draft:".Length..];
        if (ArtifactKey(reference) is { } key) return "draft:" + await MaterializeAsync(key);
        if (!options.AllowLocalPaths) throw new SioException($"speculative:draft needs an imported model (draft:{ModelRefPrefix}KEY), got '{reference}'");
        return drafter;
    }

    /// <summary>Brings a reference (uploads/NAME or a local path) to a local path; an uploaded .bin comes with the tokenizers beside it.</summary>
    async Task<string> Fetch(string reference, string field)
    {
        if (reference.StartsWith(Containers.Uploads + "/"))
        {
            var name = Containers.CheckName(reference[(Containers.Uploads.Length + 1)..], field);
            var dir = Path.Combine(options.WorkDir, "uploads", Hash(name));
            var local = Path.Combine(dir, Path.GetFileName(name));
            if (!await Store.DownloadAsync(Containers.Uploads, name, local)) throw new SioException($"{field}: {reference} is not in the uploads container of {Store.Location}");
            if (name.EndsWith(".bin"))
            {
                var folder = name.Contains('/') ? name[..(name.LastIndexOf('/') + 1)] : "";
                foreach (var o in await Store.ListAsync(Containers.Uploads, folder))
                {
                    var file = o.Name[folder.Length..];
                    if (!file.Contains('/') && o.Name != name && (file.StartsWith("tok") || file.StartsWith("tokenizer")))
                        await Store.DownloadAsync(Containers.Uploads, o.Name, Path.Combine(dir, file));
                }
            }
            return local;
        }
        if (!options.AllowLocalPaths) throw new SioException($"{field} must name an upload (uploads/NAME), got '{reference}'");
        var path = Path.GetFullPath(reference);
        if (!File.Exists(path) && !Directory.Exists(path)) throw new SioException($"{field}: {reference} does not exist");
        return path;
    }

    /// <summary>Checks that the request's references exist and its dataset reads, before any work is done.</summary>
    public async Task<StagedDataset> ValidateAsync(OptimizationRequest request)
    {
        var problems = request.Problems();
        if (problems.Count > 0) throw new SioException(string.Join("; ", problems.SelectMany(p => p.Value.Select(m => $"{p.Key}: {m}"))));
        var file = await Fetch(request.Dataset, "dataset");
        Dataset data;
        try { data = DatasetReader.Read(file); }
        catch (SioException e) { throw new SioException($"dataset: {e.Message}"); }
        if (data.Records.Count < 2) throw new SioException($"dataset: {request.Dataset} has {data.Records.Count} usable records; at least 2 are needed (half calibrate, half measure)");
        var key = data.Sha256[..32];
        var name = $"{DatasetsPrefix}/{key}{Path.GetExtension(file)}";
        if (!await Store.ExistsAsync(Containers.Artifacts, name)) await Store.UploadAsync(Containers.Artifacts, name, file);
        var halves = new[] { "calibration", "evaluation" };
        for (int h = 0; h < 2; h++)
        {
            var part = $"{DatasetsPrefix}/{key}.{halves[h]}.jsonl";
            if (await Store.ExistsAsync(Containers.Artifacts, part)) continue;
            var temp = Path.Combine(options.WorkDir, "incoming", $"{Guid.NewGuid():N}.jsonl");
            Directory.CreateDirectory(Path.GetDirectoryName(temp)!);
            try
            {
                File.WriteAllLines(temp, data.Records.Where((_, i) => i % 2 == h).Select(r => (r.IsPromptResponse
                    ? new System.Text.Json.Nodes.JsonObject { ["prompt"] = r.Prompt, ["response"] = r.Response }
                    : new System.Text.Json.Nodes.JsonObject { ["text"] = r.Text }).ToJsonString()));
                await Store.UploadAsync(Containers.Artifacts, part, temp);
            }
            finally { File.Delete(temp); }
        }
        if (request.Tokenizer is not null) await Fetch(request.Tokenizer, "tokenizer");
        return new StagedDataset(name, data.Sha256, data.Records.Count, $"{DatasetsPrefix}/{key}.calibration.jsonl", $"{DatasetsPrefix}/{key}.evaluation.jsonl");
    }

    async Task<string> DatasetFile(string name)
    {
        var local = Path.Combine(options.WorkDir, name);
        if (!File.Exists(local) && !await Store.DownloadAsync(Containers.Artifacts, name, local))
            throw new SioException($"dataset {name} is missing from {Store.Location}");
        return local;
    }

    /// <summary>A model artifact as a local folder (downloaded once per work folder).</summary>
    public Task<string> MaterializeAsync(string modelKey) => Locked("model:" + modelKey, async () =>
    {
        var folder = Path.Combine(options.WorkDir, ModelsPrefix, modelKey);
        if (!await ArtifactFolders.GetAsync(Store, Containers.Artifacts, ModelsPrefix, modelKey, folder))
            throw new SioException($"model artifact {modelKey} is missing from {Store.Location}");
        return folder;
    });

    async Task<ModelArtifact?> Existing(string key, string name)
    {
        var m = await ArtifactFolders.FindAsync(Store, Containers.Artifacts, ModelsPrefix, key);
        return m is null ? null : new ModelArtifact(key, name, m.Metadata.GetValueOrDefault("dtype", "float32"), long.Parse(m.Metadata.GetValueOrDefault("bytes", "0")), true);
    }

    async Task<ModelArtifact> Publish(string key, string name, string folder)
    {
        var manifest = ModelManifest.Load(folder);
        long bytes = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Where(f => !f.Contains("/.sio/")).Sum(f => new FileInfo(f).Length);
        await ArtifactFolders.PutAsync(Store, Containers.Artifacts, ModelsPrefix, key, folder,
            new() { ["name"] = name, ["dtype"] = manifest.Dtype, ["bytes"] = bytes.ToString() });
        return new ModelArtifact(key, name, manifest.Dtype, bytes, false);
    }

    // ---- steps ---------------------------------------------------------------------------------

    /// <summary>Imports (or adopts) the model: a llama2.c .bin, a Hugging Face folder, a sio model folder, or a .zip of either.</summary>
    public async Task<ModelArtifact> ImportAsync(ImportInput input)
    {
        if (ArtifactKey(input.Model) is { } artifactKey) // an imported model: nothing to do
            return await Existing(artifactKey, input.Model) ?? throw new SioException($"model: {input.Model} is not in the artifacts container of {Store.Location}");
        var source = await Fetch(input.Model, "model");
        var tokenizer = input.Tokenizer is null ? null : await Fetch(input.Tokenizer, "tokenizer");
        var unpacked = source;
        string? temp = null;
        try
        {
            if (source.EndsWith(".zip", StringComparison.OrdinalIgnoreCase))
            {
                temp = Path.Combine(options.WorkDir, "unpack", Guid.NewGuid().ToString("N"));
                try { ZipFile.ExtractToDirectory(source, temp); } // refuses entries that would land outside temp
                catch (Exception e) when (e is InvalidDataException or IOException) { throw new SioException($"model: {input.Model} is not a readable zip ({e.Message})"); }
                unpacked = FindModelRoot(temp) ?? throw new SioException($"model: {input.Model} holds no model (a sio model folder with sio.json, a Hugging Face folder with config.json, or a llama2.c .bin)");
            }
            bool adopted = Directory.Exists(unpacked) && File.Exists(Path.Combine(unpacked, ModelManifest.FileName));
            var sourceHash = Directory.Exists(unpacked)
                ? Hash(Directory.EnumerateFiles(unpacked, "*", SearchOption.AllDirectories).Where(f => !f.Contains("/.sio/")).Order(StringComparer.Ordinal)
                    .Select(f => Path.GetRelativePath(unpacked, f) + ":" + ModelManifest.Sha256File(f)).ToArray())
                : ModelManifest.Sha256File(unpacked);
            var key = Hash("import/1", sourceHash, tokenizer is null ? "" : ModelManifest.Sha256File(tokenizer));
            var name = Path.GetFileNameWithoutExtension(input.Model.TrimEnd('/'));
            return await Locked(key, async () =>
            {
                if (await Existing(key, name) is { } hit) return hit;
                if (adopted) { Model.Load(unpacked, options.ModelOptions).Dispose(); return await Publish(key, name, unpacked); }
                var bin = Directory.Exists(unpacked) && !File.Exists(Path.Combine(unpacked, "config.json"))
                    ? Directory.GetFiles(unpacked, "*.bin").Where(f => !Path.GetFileName(f).StartsWith("tok")).SingleOrDefault()
                      ?? throw new SioException($"model: {input.Model} holds no single llama2.c .bin")
                    : unpacked;
                var outDir = Path.Combine(options.WorkDir, "build", Guid.NewGuid().ToString("N"));
                try
                {
                    ModelImporter.Import(new ImportRequest { Source = bin, Tokenizer = tokenizer }, outDir);
                    return await Publish(key, name, outDir);
                }
                finally { if (Directory.Exists(outDir)) Directory.Delete(outDir, true); }
            });
        }
        finally { if (temp is not null && Directory.Exists(temp)) Directory.Delete(temp, true); }
    }

    static string? FindModelRoot(string dir)
    {
        foreach (var d in new[] { dir }.Concat(Directory.EnumerateDirectories(dir, "*", SearchOption.AllDirectories)))
            if (File.Exists(Path.Combine(d, ModelManifest.FileName)) || File.Exists(Path.Combine(d, "config.json")) ||
                Directory.GetFiles(d, "*.bin").Any(f => !Path.GetFileName(f).StartsWith("tok"))) return d;
        return null;
    }

    public async Task<ModelArtifact> QuantizeAsync(QuantizeInput input)
    {
        var key = Hash("quantize/3", input.Model.Key, input.Method, input.GroupSize, input.AccuracyLevel.ToString(), input.Method == "awq" ? input.Dataset.Sha256 : "");
        return await Locked(key, async () =>
        {
            if (await Existing(key, input.Name) is { } hit) return hit;
            var source = await MaterializeAsync(input.Model.Key);
            var outDir = Path.Combine(options.WorkDir, "build", Guid.NewGuid().ToString("N"));
            try
            {
                Quantizer.Run(source, outDir, new QuantizationConfig
                {
                    Method = input.Method, GroupSize = input.GroupSize, AccuracyLevel = input.AccuracyLevel,
                    // an int8 classifier is fast only with int8 activations (level 4); at level 0 ONNX Runtime's 8-bit kernel
                    // decoded the 110M model at 10 tok/s against 101 with a float32 classifier
                    LmHead = input.AccuracyLevel == 4 ? "int8" : "fp32",
                    Calibration = input.Method == "awq" ? await DatasetFile(input.Dataset.CalibrationKey) : null,
                }.Validate());
                return await Publish(key, input.Name, outDir);
            }
            finally { if (Directory.Exists(outDir)) Directory.Delete(outDir, true); }
        });
    }

    public async Task<ModelArtifact> CompileAsync(CompileInput input)
    {
        Compiler.RequireProvider(input.Target);
        var key = Hash("compile/1", input.Model.Key, input.Target, Compiler.OrtVersion, HardwareFingerprint.Hash);
        return await Locked(key, async () =>
        {
            if (await Existing(key, input.Name) is { } hit) return hit;
            var source = await MaterializeAsync(input.Model.Key);
            var outDir = Path.Combine(options.WorkDir, "build", Guid.NewGuid().ToString("N"));
            try
            {
                Compiler.Run(source, outDir, new CompileConfig { Target = input.Target, CacheDir = Path.Combine(options.WorkDir, "compile-cache") });
                return await Publish(key, input.Name, outDir);
            }
            finally { if (Directory.Exists(outDir)) Directory.Delete(outDir, true); }
        });
    }

    /// <summary>Measures one variant: a load sweep on the dataset's prompts and its perplexity. Measurements are stored by input hash and reused on retry.</summary>
    public async Task<VariantMeasurement> BenchmarkAsync(BenchmarkInput input)
    {
        var instance = Pricing.Resolve(input.Instance, input.PricePerHour);
        var key = Hash("benchmark/3", input.Variant, input.Model.Key, input.Drafter, input.Dataset.Sha256, JsonSerializer.Serialize(input.Settings), instance.Name, instance.PricePerHour);
        var name = $"{MeasurementsPrefix}/{key}.json";
        if (await Store.GetTextAsync(Containers.Artifacts, name) is { } cached)
            return JsonSerializer.Deserialize<VariantMeasurement>(cached, OptimizationRequest.Json)! with { Reused = true };
        var folder = await MaterializeAsync(input.Model.Key);
        var dataFile = await DatasetFile(input.Dataset.EvaluationKey);
        await MeasurementLock.WaitAsync(); // building a datastore is heavy work too: never beside a measurement
        VariantMeasurement m;
        try
        {
            if (input.Drafter == "datastore") input = input with { Drafter = await DatastoreAsync(input.Model, folder, input.Dataset) };
            m = Measure(input with { Drafter = await LocalDrafter(input.Drafter) }, folder, dataFile, instance) with { Drafter = input.Drafter };
        }
        finally { MeasurementLock.Release(); }
        await Store.PutTextAsync(Containers.Artifacts, name, JsonSerializer.Serialize(m, OptimizationRequest.Json));
        return m;
    }

    VariantMeasurement Measure(BenchmarkInput input, string folder, string dataFile, Instance instance)
    {
        var s = input.Settings;
        var data = DatasetReader.Read(dataFile);
        var speculative = new SpeculativeOptions { Drafter = input.Drafter };
        using var model = Model.Load(folder, options.ModelOptions.ForDrafter(speculative));
        var config = new LoadBenchmarkConfig
        {
            Concurrency = s.Concurrency, Requests = s.Requests, MaxNewTokens = s.MaxNewTokens,
            PromptTokensMin = s.PromptTokensMin, PromptTokensMax = s.PromptTokensMax,
            ModelOptions = options.ModelOptions,
            Speculative = speculative,
        }.Validate();
        var prompts = LoadBenchmark.Prompts(model, data, config);
        var levels = LoadBenchmark.Sweep(model, prompts, config, instance, 0);
        var ppl = Perplexity.Evaluate(model, data with { Records = data.Records.Take(s.PerplexityRecords).ToList() }, maxTokensPerRecord: 256);
        var spec = levels.FirstOrDefault(l => l.AcceptanceRate is not null);
        var (exactChecked, exact) = input.Drafter == "none" ? ((int?)null, (int?)null) : ExactOutputs(model, prompts.Prompts, speculative, s.MaxNewTokens);
        return new VariantMeasurement(input.Variant, input.Model, input.Drafter,
            levels.Select(l => new LevelMeasurement(l.Concurrency, Math.Round(l.OutputTokensPerSecond, 2), Math.Round(l.TtftMs.P50, 3), Math.Round(l.ItlMs.P50, 3),
                Math.Round(l.ItlMs.P90, 3), Pricing.BlendedPricePerMillionTokens(instance.PricePerHour, 0, l.OutputTokensPerSecond), l.Errors,
                Math.Round(Math.Max(0, l.E2eMs.P50 - l.TtftMs.P50) / Math.Max(1, s.MaxNewTokens - 1), 4))).ToList(),
            Math.Round(ppl.Perplexity, 5), spec?.AcceptanceRate, spec?.MeanAcceptedLength, instance.Name, instance.PricePerHour, false,
            exactChecked, exact);
    }

    /// <summary>Prompts checked for exact speculative output per measurement.</summary>
    public const int ExactnessPrompts = 8;

    /// <summary>The deployment's promise, checked on the user's own prompts: greedy decoding with the drafter gives the
    /// tokens plain greedy decoding gives.</summary>
    static (int?, int?) ExactOutputs(Model model, IReadOnlyList<List<int>> prompts, SpeculativeOptions spec, int maxNewTokens)
    {
        var opts = new GenerationOptions { MaxTokens = maxNewTokens, IgnoreModelStopTokens = true };
        int checkedCount = 0, same = 0;
        foreach (var prompt in prompts.Take(ExactnessPrompts))
        {
            var plain = TextGeneration.Generate(model, prompt, opts);
            using var d = DrafterFactory.Create(spec, model);
            var withDrafter = TextGeneration.Generate(model, prompt, opts with { Speculative = spec }, drafter: d);
            checkedCount++;
            if (plain.TokenIds.SequenceEqual(withDrafter.TokenIds)) same++;
        }
        return (checkedCount, same);
    }

    /// <summary>Writes reports/RUN/report.json and report.md, then (when the gate passed and deploying is asked for) deployments/RUN.json, last.</summary>
    public async Task<Published> PublishAsync(PublishInput input)
    {
        var reportName = $"{input.RunId}/report.json";
        var chosen = input.Variants.FirstOrDefault(v => v.Variant == input.Decision.Chosen);
        var check = input.Decision.Checks.FirstOrDefault(c => c.Variant == input.Decision.Chosen);
        var report = new
        {
            runId = input.RunId, request = input.Request, passed = input.Decision.Passed, chosen = input.Decision.Chosen,
            gate = input.Decision, variants = input.Variants,
            presets = Presets(input.Variants),
            createdUtc = DateTime.UtcNow,
        };
        await Store.PutTextAsync(Containers.Reports, $"{input.RunId}/report.md", Markdown(input));
        await Store.PutTextAsync(Containers.Reports, reportName, JsonSerializer.Serialize(report, OptimizationRequest.Json));
        string? deployment = null;
        if (chosen is not null && check is not null && input.Request.Deploy)
        {
            deployment = $"{input.RunId}.json";
            var manifest = new DeploymentManifest(input.RunId, input.RunId, chosen.Variant, chosen.Model.Key, $"{Containers.Artifacts}/{ModelsPrefix}/{chosen.Model.Key}",
                chosen.Drafter, $"{Containers.Reports}/{reportName}", check.Speedup, check.PricePerMillionTokens, DateTime.UtcNow);
            await Store.PutTextAsync(Containers.Deployments, deployment, manifest.ToJson());
        }
        return new Published($"{Containers.Reports}/{reportName}", deployment is null ? null : $"{Containers.Deployments}/{deployment}");
    }

    /// <summary>Lowest latency (p50 time per output token), lowest cost and balanced (cheapest within twice the lowest latency), over every variant and level.</summary>
    public static Dictionary<string, object> Presets(IReadOnlyList<VariantMeasurement> variants)
    {
        var all = variants.SelectMany(v => v.Levels.Where(l => l.TpotP50Ms > 0 && double.IsFinite(l.BlendedPricePerMillionTokens)).Select(l => (v.Variant, v.Drafter, Level: l))).ToList();
        if (all.Count == 0) return [];
        object P((string Variant, string Drafter, LevelMeasurement Level) x) => new
        {
            variant = x.Variant, drafter = x.Drafter, concurrency = x.Level.Concurrency, tpotP50Ms = x.Level.TpotP50Ms, itlP50Ms = x.Level.ItlP50Ms, ttftP50Ms = x.Level.TtftP50Ms,
            outputTokensPerSecond = x.Level.OutputTokensPerSecond, pricePerMillionTokens = x.Level.BlendedPricePerMillionTokens,
        };
        var fastest = all.MinBy(x => x.Level.TpotP50Ms);
        var cheapest = all.MinBy(x => x.Level.BlendedPricePerMillionTokens);
        var balanced = all.Where(x => x.Level.TpotP50Ms <= 2 * fastest.Level.TpotP50Ms).MinBy(x => x.Level.BlendedPricePerMillionTokens);
        return new() { ["lowestLatency"] = P(fastest), ["lowestCost"] = P(cheapest), ["balanced"] = P(balanced) };
    }

    static string Markdown(PublishInput input)
    {
        var sb = new StringBuilder($"# Optimization {input.RunId}\n\nRecipe `{input.Request.Recipe}` on `{input.Request.Model}`, dataset `{input.Request.Dataset}`.\n\n");
        sb.AppendLine("Perplexity on the evaluation half of the dataset (odd records; even records calibrate). TPOT: time per output token after the first, p50.\n");
        sb.AppendLine("| variant | drafter | perplexity | c | output tok/s | TTFT p50 ms | TPOT p50 ms | ITL p50 ms | $/1M tokens |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var v in input.Variants)
            foreach (var l in v.Levels)
                sb.AppendLine($"| {v.Variant} | {(v.Drafter.StartsWith("datastore:") ? "datastore" : v.Drafter)} | {v.Perplexity:F4} | {l.Concurrency} | {l.OutputTokensPerSecond:F1} | {l.TtftP50Ms:F2} | {l.TpotP50Ms:F3} | {l.ItlP50Ms:F3} | {l.BlendedPricePerMillionTokens:G4} |");
        foreach (var v in input.Variants.Where(v => v.ExactChecked is not null))
            sb.AppendLine($"\n{v.Variant}: greedy output with the drafter equal to plain greedy decoding on {v.ExactOutputs}/{v.ExactChecked} evaluation prompts.");
        sb.AppendLine($"\n## Gate\n\n{(input.Decision.Passed ? $"Passed: **{input.Decision.Chosen}**." : "No variant passed.")}\n");
        foreach (var c in input.Decision.Checks)
            sb.AppendLine($"- {c.Variant}: perplexity {c.PerplexityIncreasePercent:+0.00;-0.00} %, speedup {c.Speedup:F2}x, ${c.PricePerMillionTokens:G4}/1M — {(c.Passed ? "pass" : string.Join("; ", c.Failures))}");
        return sb.ToString();
    }

    /// <summary>Makes a published deployment the live one: deployments/current.json, then the deployment event. Repeating it is harmless.</summary>
    public async Task<bool> DeployAsync(string manifestName)
    {
        var name = manifestName.StartsWith(Containers.Deployments + "/") ? manifestName[(Containers.Deployments.Length + 1)..] : manifestName;
        var manifest = DeploymentManifest.Parse(await Store.GetTextAsync(Containers.Deployments, Containers.CheckName(name, "deployment")))
            ?? throw new SioException($"deployment {manifestName} does not exist");
        var current = DeploymentManifest.Parse(await Store.GetTextAsync(Containers.Deployments, DeploymentManifest.Current));
        if (options.Events is { } events) await events.DeployAsync(manifest);
        if (current?.Id != manifest.Id) await Store.PutTextAsync(Containers.Deployments, DeploymentManifest.Current, manifest.ToJson());
        return true;
    }
}
