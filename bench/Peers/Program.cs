// Side by side with the engines users would pick instead: sio, ONNX Runtime GenAI (same model folder) and llama.cpp
// (through LLamaSharp, on sio's GGUF exports). Same prompt tokens and token counts for all, batch 1, greedy, medians
// over runs, one process, with the memory-bandwidth bound beside them.
//
//   dotnet run --project bench/Peers -c Release -- MODEL_DIR [INT4_DIR [QUANTIZED_DIR ...]] [--prompt-tokens 128] [--tokens 64] [--runs 3] [--batch 1,4,8] [--head-to-head 7]
//
// Every sio folder is measured with ONNX Runtime running the decode steps and with sio's native decoder (--engine native).
// --head-to-head N (default 7; 0 skips it) ends with sio's native decoder against llama.cpp at the same precision,
// alternating runs: fp32 against F32, and each QUANTIZED_DIR in llama.cpp's block format (symmetric, blocks of 32, the
// classifier at the same bits) against Q4_0 or Q8_0.
//
// --batch adds a second table: total decode tokens/s with several sequences decoded together, sio's continuous-batching
// generator (the rows of one KV cache, one pass per step) against GenAI's static batch (batch_size), same prompts.
using System.Diagnostics;
using LLama;
using LLama.Common;
using LLama.Native;
using Sio;
using Sio.Benchmarking;
using Sio.Generation;
using Sio.Models;
using Sio.Quantization;
using Sio.Speculative;

var positional = args.Where((a, i) => !a.StartsWith("--") && (i == 0 || !args[i - 1].StartsWith("--"))).ToList();
int Opt(string name, int fallback) => args.SkipWhile(a => a != name).Skip(1).Select(int.Parse).DefaultIfEmpty(fallback).First();
if (positional.Count == 0) { Console.Error.WriteLine("usage: MODEL_DIR [INT4_DIR [QUANTIZED_DIR ...]] [--prompt-tokens 128] [--tokens 64] [--runs 3] [--batch 1,4,8] [--head-to-head 7]"); return 1; }
string fp32 = positional[0];
string? int4 = positional.Count > 1 ? positional[1] : null;
// optional: more quantized folders measured plainly beside them, each labelled from its quantization report (e.g. every
// weight at 4 bits in blocks of 32 like llama.cpp's Q4_0 file, or at 8 bits like Q8_0)
var extra = positional.Skip(2).ToList();
int promptTokens = Opt("--prompt-tokens", 128), decodeTokens = Opt("--tokens", 64), runs = Opt("--runs", 3), headToHead = Opt("--head-to-head", 7);
var batches = args.SkipWhile(a => a != "--batch").Skip(1).Select(v => v.Split(',').Select(int.Parse).ToArray()).DefaultIfEmpty([1, 4, 8]).First();

using var reference = Model.Load(fp32);
var c = reference.Config;
var rng = new Random(7);
var prompt = new[] { c.BosTokenId }.Concat(Enumerable.Range(0, promptTokens - 1).Select(_ => rng.Next(3, Math.Min(c.VocabSize, reference.Tokenizer.VocabSize)))).ToArray();
var rows = new List<(string Engine, string Precision, double Prefill, double Decode, string Note)>();

(double Prefill, double Decode) Median(Func<(double, double)> once)
{
    once(); // warm-up
    var xs = Enumerable.Range(0, runs).Select(_ => once()).ToList();
    return (DecodeBenchmark.Median(xs.Select(x => x.Item1).ToList()), DecodeBenchmark.Median(xs.Select(x => x.Item2).ToList()));
}

// the bare forward-pass loop: prefill the prompt, then greedy single-token steps
(double Prefill, double Decode) SioOnce(Model model)
{
    using var g = new Generator(model, promptTokens + decodeTokens + 1);
    var sw = Stopwatch.StartNew();
    g.AppendTokens(prompt);
    double prefill = promptTokens / sw.Elapsed.TotalSeconds;
    int next = Sampler.ArgMax(g.LastLogits);
    sw.Restart();
    for (int i = 0; i < decodeTokens; i++) { g.AppendTokens([next]); next = Sampler.ArgMax(g.LastLogits); }
    return (prefill, decodeTokens / sw.Elapsed.TotalSeconds);
}
(double Prefill, double Decode) Loop(Model model) => Median(() => SioOnce(model));

// sio: plain (ONNX Runtime, then sio's native decoder), and with drafters
void Sio(string dir, string precision, bool drafters = true)
{
    using var model = Model.Load(dir);
    var (p, d) = Loop(model);
    rows.Add(("sio", precision, p, d, ""));
    Model? native = null;
    try { native = Model.Load(dir, new ModelOptions { Engine = "native" }); }
    catch (SioException e) { rows.Add(("sio --engine native", precision, double.NaN, double.NaN, e.Message)); }
    if (native is not null)
        using (native)
        {
            var (np, nd) = Loop(native);
            rows.Add(("sio --engine native", precision, np, nd, $"{native.Engine}; prompt prefilled by ONNX Runtime"));
        }
    // "none" runs the same generation loop as the drafter rows (streaming text, stop checks), so their ratio to it is
    // speculation's own effect; the row above is the bare forward-pass loop the peers are compared with
    foreach (var drafter in drafters ? new[] { "none", "ngram", "datastore", precision == "fp32" ? "self-int4" : null } : [])
    {
        if (drafter is null) continue;
        var spec = new SpeculativeOptions { Drafter = drafter };
        var opts = new GenerationOptions { MaxTokens = decodeTokens + 1, IgnoreModelStopTokens = true, Speculative = spec };
        SpeculativeStats? stats = null;
        // a draft model takes turns with a target that does not spin, as sio loads it for one
        using var ownTarget = spec.UsesDraftModel ? Model.Load(dir, new ModelOptions().ForDrafter(spec)) : null;
        var target = ownTarget ?? model;
        // a fresh drafter each run: a datastore must not learn this very prompt's answer from the run before
        var (_, sd) = Median(() =>
        {
            using var dr = DrafterFactory.Create(spec, target);
            var r = TextGeneration.Generate(target, prompt, opts, drafter: dr);
            stats = r.Speculative;
            return (0, r.DecodeTokensPerSecond);
        });
        rows.Add(("sio", $"{precision} + {drafter}", double.NaN, sd, drafter == "none" ? "generation loop without a drafter (the drafter rows' baseline)"
            : $"α {stats!.AcceptanceRate:P0}, {stats.MeanAcceptedLength:F2} tokens/step, {sd / rows.Last(r => r.Precision == $"{precision} + none").Decode:F2}x the loop without a drafter"));
    }
}
Sio(fp32, "fp32");
if (int4 is not null) Sio(int4, "int4");
var reports = extra.Select(dir => (Dir: dir, Report: System.Text.Json.JsonSerializer.Deserialize<QuantizationReport>(
    File.ReadAllText(Path.Combine(dir, QuantizationReport.FileName)), ModelManifest.Json)!)).ToList();
foreach (var (dir, report) in reports)
{
    Sio(dir, $"int{report.Bits} g{report.GroupSize}{(report.Symmetric ? " symmetric" : "")}, classifier {report.LmHead.Precision}", drafters: false);
}

// ONNX Runtime GenAI on the same folders
void GenAi(string dir, string precision)
{
    using var model = new Microsoft.ML.OnnxRuntimeGenAI.Model(dir);
    var (p, d) = Median(() =>
    {
        using var gp = new Microsoft.ML.OnnxRuntimeGenAI.GeneratorParams(model);
        gp.SetSearchOption("max_length", promptTokens + decodeTokens + 1);
        gp.SetSearchOption("do_sample", false);
        using var g = new Microsoft.ML.OnnxRuntimeGenAI.Generator(model, gp);
        var sw = Stopwatch.StartNew();
        g.AppendTokens(prompt);
        g.GenerateNextToken();
        double prefill = promptTokens / sw.Elapsed.TotalSeconds;
        sw.Restart();
        for (int i = 0; i < decodeTokens; i++) g.GenerateNextToken();
        return (prefill, decodeTokens / sw.Elapsed.TotalSeconds);
    });
    rows.Add(("ORT GenAI 0.18", precision, p, d, "its C# API exposes no speculative mode for a decoder-only folder"));
}
GenAi(fp32, "fp32");
if (int4 is not null) GenAi(int4, "int4");

// llama.cpp on GGUF exports of the fp32 folder
ModelParams LlamaParams(string file) => new(file) { ContextSize = (uint)(promptTokens + decodeTokens + 8), GpuLayerCount = 0, Threads = Environment.ProcessorCount, BatchSize = (uint)promptTokens };
(double Prefill, double Decode) LlamaOnce(LLamaWeights weights, ModelParams parameters)
{
    using var context = weights.CreateContext(parameters);
    var batch = new LLamaBatch();
    for (int i = 0; i < prompt.Length; i++) batch.Add(prompt[i], i, LLamaSeqId.Zero, i == prompt.Length - 1);
    var sw = Stopwatch.StartNew();
    context.Decode(batch);
    int next = Sampler.ArgMax(context.NativeHandle.GetLogitsIth(batch.TokenCount - 1));
    double prefill = promptTokens / sw.Elapsed.TotalSeconds;
    sw.Restart();
    for (int i = 0; i < decodeTokens; i++)
    {
        batch.Clear();
        batch.Add(next, promptTokens + i, LLamaSeqId.Zero, true);
        context.Decode(batch);
        next = Sampler.ArgMax(context.NativeHandle.GetLogitsIth(0));
    }
    return (prefill, decodeTokens / sw.Elapsed.TotalSeconds);
}
var ggufDir = Directory.CreateTempSubdirectory("sio-peers-").FullName;
var duels = new List<(string Sio, string Llama, List<double> SioDecode, List<double> LlamaDecode)>();
try
{
    foreach (var type in GgufExporter.Types)
    {
        var file = Path.Combine(ggufDir, $"{type}.gguf");
        GgufExporter.Export(fp32, type, file);
        var parameters = LlamaParams(file);
        using var weights = LLamaWeights.LoadFromFile(parameters);
        var (p, d) = Median(() => LlamaOnce(weights, parameters));
        rows.Add(("llama.cpp (LLamaSharp 0.30)", type.ToUpperInvariant(), p, d, $"GGUF {new FileInfo(file).Length / 1e6:F1} MB"));
    }

    // Head to head at the same precision, alternating one sio run and one llama.cpp run, so that both see the same state
    // of this shared machine: fp32 against F32, and every extra folder in llama.cpp's own block format (symmetric blocks
    // of 32, classifier at the same bits) against Q4_0 or Q8_0.
    var pairs = new List<(string Dir, string Label, string Type)> { (fp32, "fp32", "f32") };
    foreach (var (dir, report) in reports)
    {
        if (report.GroupSize == 32 && report.Symmetric && report.LmHead.Precision == $"int{report.Bits}")
            pairs.Add((dir, $"int{report.Bits} g32 symmetric, classifier int{report.Bits}", report.Bits == 4 ? "q4_0" : "q8_0"));
    }
    foreach (var (dir, label, type) in headToHead > 0 ? pairs : [])
    {
        Model sio;
        try { sio = Model.Load(dir, new ModelOptions { Engine = "native" }); }
        catch (SioException) { continue; }   // reported in the table above
        using var _ = sio;
        var parameters = LlamaParams(Path.Combine(ggufDir, $"{type}.gguf"));
        using var weights = LLamaWeights.LoadFromFile(parameters);
        SioOnce(sio);
        LlamaOnce(weights, parameters);
        var (s, l) = (new List<double>(), new List<double>());
        for (int round = 0; round < headToHead; round++)
        {
            s.Add(SioOnce(sio).Decode);
            l.Add(LlamaOnce(weights, parameters).Decode);
        }
        duels.Add(($"sio --engine native, {label}", type.ToUpperInvariant(), s, l));
    }
}
finally { Directory.Delete(ggufDir, true); }

// Several sequences at once: sio's BatchGenerator rows against GenAI's static batch, same prompts (one per row).
var batchRows = new List<(string Engine, string Precision, int Batch, double Decode)>();
var prompts = Enumerable.Range(0, batches.Max()).Select(b => new[] { c.BosTokenId }.Concat(Enumerable.Range(0, promptTokens - 1).Select(_ => rng.Next(3, Math.Min(c.VocabSize, reference.Tokenizer.VocabSize)))).ToArray()).ToArray();
foreach (var (dir, precision) in new[] { (fp32, "fp32"), (int4, "int4") })
{
    if (dir is null) continue;
    using (var model = Model.Load(dir))
        foreach (var n in batches)
        {
            var (_, d) = Median(() =>
            {
                using var batch = new BatchGenerator(model, n, promptTokens + decodeTokens + 1);
                var next = new int[n];
                var active = Enumerable.Repeat(true, n).ToArray();
                for (int r = 0; r < n; r++) { batch.Prefill(r, prompts[r]); next[r] = Sampler.ArgMax(batch.Logits(r)); }
                var sw = Stopwatch.StartNew();
                for (int i = 0; i < decodeTokens; i++)
                {
                    batch.Step(next, active);
                    for (int r = 0; r < n; r++) next[r] = Sampler.ArgMax(batch.Logits(r));
                }
                return (0, n * decodeTokens / sw.Elapsed.TotalSeconds);
            });
            batchRows.Add(("sio", precision, n, d));
        }
    using (var model = new Microsoft.ML.OnnxRuntimeGenAI.Model(dir))
        foreach (var n in batches)
        {
            var (_, d) = Median(() =>
            {
                using var gp = new Microsoft.ML.OnnxRuntimeGenAI.GeneratorParams(model);
                gp.SetSearchOption("max_length", promptTokens + decodeTokens + 1);
                gp.SetSearchOption("do_sample", false);
                gp.SetSearchOption("batch_size", n);
                using var g = new Microsoft.ML.OnnxRuntimeGenAI.Generator(model, gp);
                g.AppendTokens(prompts.Take(n).SelectMany(x => x).ToArray());
                g.GenerateNextToken();
                var sw = Stopwatch.StartNew();
                for (int i = 0; i < decodeTokens; i++) g.GenerateNextToken();
                return (0, n * decodeTokens / sw.Elapsed.TotalSeconds);
            });
            batchRows.Add(("ORT GenAI 0.18", precision, n, d));
        }
}

double bw = MemoryBandwidth.MeasureGBps();
long weightBytes = DecodeBenchmark.WeightBytesPerToken(Path.Combine(fp32, reference.Manifest.ModelFile));
Console.WriteLine($"{Path.GetFileName(Path.GetFullPath(fp32).TrimEnd('/'))}: {c.ParameterCount / 1e6:F1}M parameters; {promptTokens}-token prompt, {decodeTokens} decoded tokens, batch 1, greedy, median of {runs} runs; " +
    $"{Environment.ProcessorCount} cores; read bandwidth {bw:F1} GB/s → fp32 decode bound {bw * 1e9 / weightBytes:F1} tok/s");
Console.WriteLine();
Console.WriteLine("| engine | precision | prefill tok/s | decode tok/s | notes |");
Console.WriteLine("|---|---|---|---|---|");
foreach (var r in rows)
    Console.WriteLine($"| {r.Engine} | {r.Precision} | {(double.IsNaN(r.Prefill) ? "—" : r.Prefill.ToString("F0"))} | {(double.IsNaN(r.Decode) ? "—" : r.Decode.ToString("F1"))} | {r.Note} |");
Console.WriteLine();
Console.WriteLine($"Several sequences decoded together ({promptTokens}-token prompts, {decodeTokens} tokens each; total decode tokens/s):");
Console.WriteLine();
Console.WriteLine("| engine | precision | " + string.Join(" | ", batches.Select(b => $"batch {b}")) + " |");
Console.WriteLine("|---|---|" + string.Concat(batches.Select(_ => "---|")));
foreach (var g in batchRows.GroupBy(r => (r.Engine, r.Precision)))
    Console.WriteLine($"| {g.Key.Engine} | {g.Key.Precision} | " + string.Join(" | ", batches.Select(b => g.First(r => r.Batch == b).Decode.ToString("F1"))) + " |");
if (duels.Count > 0)
{
    Console.WriteLine();
    Console.WriteLine($"Head to head at the same precision: {headToHead} rounds, each one sio run then one llama.cpp run (decode tok/s, medians; the ratio is per round):");
    Console.WriteLine();
    Console.WriteLine("| sio | llama.cpp | sio decode tok/s | llama.cpp decode tok/s | sio ÷ llama.cpp: median (lowest … highest) |");
    Console.WriteLine("|---|---|---|---|---|");
    foreach (var (sioLabel, llama, s, l) in duels)
    {
        var ratios = s.Zip(l, (a, b) => a / b).ToList();
        Console.WriteLine($"| {sioLabel} | {llama} | {DecodeBenchmark.Median(s):F1} | {DecodeBenchmark.Median(l):F1} | {DecodeBenchmark.Median(ratios):F2}x ({ratios.Min():F2} … {ratios.Max():F2}) |");
    }
}
return 0;
