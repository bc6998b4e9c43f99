using Sio.Artifacts;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using Google.Protobuf;
using Onnx;
using Sio.Models;
using Sio.Onnx;
using Sio.Tokenization;
using static Sio.Onnx.GraphBuilder;
using DT = Onnx.TensorProto.Types.DataType;

namespace Sio.Quantization;

/// <summary>
/// Rewrites a model folder's linears as int4 MatMulNBits (RTN or AWQ), streaming one weight at a
/// time into a new folder built beside the destination and renamed into place.
/// </summary>
public static class Quantizer
{
    public static QuantizationReport Run(string inputDir, string outDir, QuantizationConfig config, IProgress<string>? progress = null)
    {
        config.Validate();
        var clock = Stopwatch.StartNew();
        var manifest = ModelManifest.Load(inputDir);
        if (manifest.Dtype != "float32") throw SioException.InFile(inputDir, $"the model is already {manifest.Dtype}; quantize a float32 model");
        if (manifest.Compiled is not null) throw SioException.InFile(inputDir, "this folder is compiled; quantize the original and compile the result");
        var modelPath = Path.Combine(inputDir, manifest.ModelFile);
        var model = OnnxModelFile.Read(modelPath);
        var graph = new LinearGraph(model.Graph, config);
        if (graph.Linears.Count == 0)
            throw SioException.InFile(modelPath, "no quantizable MatMul: none has a constant float32 weight as its B input (after --exclude)");
        foreach (var l in graph.Linears.Where(l => l.K < config.GroupSize))
            throw SioException.InFile(modelPath, $"group size {config.GroupSize} is larger than K = {l.K} of {l.Name}: no block of it would be whole");
        var c = manifest.Config;
        var tokenizer = TokenizerLoader.LoadFile(Path.Combine(inputDir, manifest.Tokenizer.File), c.VocabSize, c.BosTokenId, c.EosTokenId);
        using var output = OutputFolder.Begin(outDir, [inputDir, config.Calibration], ModelImporter.CheckDestination);

        var q = new BlockQuantizer(config.Bits, config.GroupSize, config.Symmetric);
        var initializers = model.Graph.Initializer.ToDictionary(t => t.Name);
        // the token embedding: the table of the Gather on input_ids
        var embedding = model.Graph.Node.FirstOrDefault(n => n.OpType == "Gather" && n.Input.Count == 2 && n.Input[1] == "input_ids" && initializers.ContainsKey(n.Input[0]))?.Input[0];
        if (config.Embedding != "fp32" && embedding is null) throw SioException.InFile(modelPath, "--embedding: no Gather of a constant table on input_ids found");
        if (embedding is not null && config.Embedding != "fp32" && model.Graph.Node.Count(n => n.Input.Contains(embedding)) != 1)
            throw SioException.InFile(modelPath, $"--embedding: the table {embedding} is shared with another node; quantize it with the classifier instead");
        float[] LoadNK(string weight) // stored (K, N) → (N, K)
        {
            var t = initializers[weight];
            var kn = MemoryMarshal.Cast<byte, float>(OnnxModelFile.ReadBytes(t, inputDir)).ToArray();
            return DecoderGraph.Transpose(kn, (int)t.Dims[0], (int)t.Dims[1]);
        }

        // 1. AWQ: calibrate, then choose each group's input scale
        Calibrator.Result? calibration = null;
        var choices = new Dictionary<string, AwqSearch.ScaleChoice>();
        if (config.Method == "awq")
        {
            calibration = Calibrator.Run(inputDir, model, tokenizer, graph.Groups, config, c.ContextLength, progress);
            int done = 0;
            Parallel.ForEach(graph.Groups, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, group =>
            {
                var weights = group.Layers.Select(l => (LoadNK(l.Weight), l.N)).ToList();
                var choice = AwqSearch.SearchScales(weights, calibration.Stats[group.Input], q, config.DuoScaling);
                lock (choices) { choices[group.Input] = choice; progress?.Report($"scale search {++done}/{graph.Groups.Count}"); }
            });
        }

        // 2. where each scale goes: consumer rows ×s, producer ÷s (norm weight, producer columns or a new Mul)
        var rowScale = new Dictionary<string, float[]>();
        var colDivide = new Dictionary<string, float[]>();
        var normDivide = new Dictionary<string, float[]>();
        var insertMul = new Dictionary<string, float[]>();
        var groupOf = new Dictionary<string, LinearGroup>();
        foreach (var group in graph.Groups)
        {
            foreach (var l in group.Layers) groupOf[l.Weight] = group;
            if (!choices.TryGetValue(group.Input, out var choice) || choice.Alpha == 0) continue;
            foreach (var l in group.Layers) rowScale[l.Weight] = choice.Scale;
            switch (group.Fold)
            {
                case Fold.NormWeight n: normDivide[n.Initializer] = choice.Scale; break;
                case Fold.ProducerColumns p: colDivide[p.Weight] = choice.Scale; break;
                default: insertMul[group.Input] = choice.Scale.Select(v => 1f / v).ToArray(); break;
            }
        }
        float[] FinalNK(LinearLayer l)
        {
            var w = LoadNK(l.Weight);
            if (rowScale.TryGetValue(l.Weight, out var s))
                for (int r = 0; r < l.N; r++) System.Numerics.Tensors.TensorPrimitives.Multiply(w.AsSpan(r * l.K, l.K), s, w.AsSpan(r * l.K, l.K));
            if (colDivide.TryGetValue(l.Weight, out var d))
                for (int r = 0; r < l.N; r++) System.Numerics.Tensors.TensorPrimitives.Divide(w.AsSpan(r * l.K, l.K), d[r], w.AsSpan(r * l.K, l.K));
            return w;
        }
        float[]? InputMean(LinearLayer l) // the mean input row over all calibration tokens, as the quantized weight sees it
        {
            if (calibration is null) return null;
            var mean = calibration.Stats[l.Input].Mean();
            if (rowScale.TryGetValue(l.Weight, out var s)) System.Numerics.Tensors.TensorPrimitives.Divide(mean, s, mean);
            return mean;
        }
        // one per input (the linears of a group share rows and scale), built only for what is used: GPTQ's inverse-Hessian
        // factor, and the matrix the refinement descends on (the scatter about the mean when a bias corrects the mean)
        var hessians = new Dictionary<string, (float[]? Factor, float[]? Refine)>();
        var pending = graph.Linears.GroupBy(l => l.Input).ToDictionary(g => g.Key, g => g.Count());
        (float[]? Factor, float[]? Refine) Hessian(LinearLayer l, List<float[]> rows)
        {
            if (!hessians.TryGetValue(l.Input, out var h))
            {
                var gram = config.Rounding == "compensate" || (config.Refine && !config.BiasCorrection) ? RoundingRefinement.Gram(rows, l.K) : null;
                var factor = config.Rounding == "compensate" ? ErrorCompensatingRounding.InverseHessianFactor(gram!, l.K) : null;
                var refine = !config.Refine ? null : config.BiasCorrection ? RoundingRefinement.Centered(rows, l.K) : gram;
                hessians[l.Input] = h = (factor, refine);
            }
            if (--pending[l.Input] == 0) hessians.Remove(l.Input); // the group's last linear: let it go
            return h;
        }
        List<float[]>? InputRows(LinearLayer l)
        {
            if (calibration is null) return null;
            var rows = calibration.Stats[l.Input].Rows;
            if (!rowScale.TryGetValue(l.Weight, out var s)) return rows;
            return rows.Select(x => { var y = new float[x.Length]; System.Numerics.Tensors.TensorPrimitives.Divide(x, s, y); return y; }).ToList();
        }

        // 3. write the new folder: quantize each linear as it streams past
        var temp = output.Temp;
        var layerReports = new List<QuantizationReport.LayerReport>();
        var biased = new HashSet<string>();
        long fp32Bytes = 0, quantBytes = 0;
        var quantized = graph.Linears.ToDictionary(l => l.Weight);
        QuantizationReport.TensorReport lmHeadReport = new("fp32", 0, 0), embedReport = new("fp32", 0, 0);
        using (var g = new GraphBuilder(Path.Combine(temp, DecoderGraph.DataFile)))
        {
            var og = model.Graph;
            g.Graph.Input.AddRange(og.Input);
            g.Graph.Output.AddRange(og.Output);
            var lmHead8 = config.LmHead == "int8" && graph.LmHead is not null ? graph.LmHead : null;
            var replaced = new Dictionary<string, LinearLayer>(quantized);
            if (lmHead8 is not null) replaced[lmHead8.Weight] = lmHead8;
            // linears sharing an input (q/k/v, gate/up) become one MatMulNBits whose output is split back: fewer and
            // larger kernels per decode step; each output column is computed as before
            var fusedOf = (config.FuseSharedInputs ? FusedGroups(graph, quantized, lmHead8) : []).SelectMany(gr => gr.Layers.Select(l => (l.Weight, gr))).ToDictionary(x => x.Weight, x => x.gr);
            var stashed = new Dictionary<LinearGroup, Dictionary<string, (BlockQuantizer.Packed Packed, float[]? Bias)>>();
            void WritePacked(string name, BlockQuantizer.Packed packed, float[]? bias)
            {
                g.Initializer(name + "_Q", packed.B, DT.Uint8, packed.N, packed.KBlocks, packed.BlockSize * packed.Bits / 8);
                g.Initializer<float>(name + "_scales", packed.Scales, DT.Float, packed.N, packed.KBlocks);
                if (packed.ZeroPoints is not null)
                    g.Initializer(name + "_zp", packed.ZeroPoints, DT.Uint8, packed.N, packed.ZeroPoints.Length / packed.N);
                if (bias is not null) { g.Initializer<float>(name + "_bias", bias, DT.Float, packed.N); biased.Add(name); }
            }

            // initializers
            int index = 0;
            foreach (var t in og.Initializer)
            {
                index++;
                if (config.FoldOnly && quantized.TryGetValue(t.Name, out var folded))
                {
                    var w = FinalNK(folded);
                    g.Initializer<float>(t.Name, DecoderGraph.Transpose(w, folded.N, folded.K), DT.Float, folded.K, folded.N);
                    var ch = choices.GetValueOrDefault(folded.Input);
                    layerReports.Add(new(folded.Name, folded.Weight, folded.K, folded.N, folded.Input, FoldName(groupOf[folded.Weight].Fold, ch), ch?.Alpha ?? 0, 1f, 0, null, null));
                    continue;
                }
                if (replaced.TryGetValue(t.Name, out var l))
                {
                    progress?.Report($"quantizing {index}/{og.Initializer.Count}: {l.Name}");
                    bool head8 = l == lmHead8;
                    var bq = head8 ? new BlockQuantizer(8, config.GroupSize, config.Symmetric) : q;
                    var w = FinalNK(l);
                    var rows = head8 ? null : InputRows(l);
                    BlockQuantizer.Packed packed;
                    float[]? bias = null;
                    float clipMean = 1f;
                    if (config.Method == "awq" && rows is not null)
                    {
                        var hessian = Hessian(l, rows);
                        var (toPack, grid) = config.Rounding == "compensate"
                            ? ErrorCompensatingRounding.Apply(w, l.N, l.K, rows, bq, hessian.Factor)
                            : (w, AwqSearch.SearchBlocks(w, l.N, l.K, rows, bq));
                        if (config.Refine)
                        {
                            if (ReferenceEquals(toPack, w)) toPack = BlockQuantizer.Dequantize(bq.Quantize(w, l.N, l.K, grid.Choice(bq)));
                            RoundingRefinement.Apply(w, toPack, l.N, l.K, hessian.Refine!, grid, bq);
                        }
                        packed = bq.Quantize(toPack, l.N, l.K, grid.Choice(bq));
                        clipMean = grid.Clip.Average();
                    }
                    else packed = bq.Quantize(w, l.N, l.K);
                    if (config.Bf16Scales) Native.Bf16.Round(packed.Scales);
                    var dq = head8 ? null : BlockQuantizer.Dequantize(packed); // the int8 classifier needs no error report
                    if (dq is not null && rows is not null && config.Method == "awq" && config.BiasCorrection) bias = BiasCorrection.For(w, dq, l.N, l.K, InputMean(l)!);
                    if (fusedOf.TryGetValue(l.Weight, out var fused))
                    {
                        var parts = stashed.TryGetValue(fused, out var st) ? st : stashed[fused] = [];
                        parts[l.Weight] = (packed, bias);
                        if (parts.Count == fused.Layers.Count) // the group's last linear: write them as one
                        {
                            var (cat, catBias) = Concatenate(fused.Layers.Select(f => parts[f.Weight]).ToList());
                            WritePacked(FusedName(fused), cat, catBias);
                            stashed.Remove(fused);
                        }
                    }
                    else WritePacked(l.Weight, packed, bias);
                    long before = (long)l.N * l.K * 4;
                    if (head8) { lmHeadReport = new("int8", before, packed.Bytes); continue; }
                    fp32Bytes += before;
                    quantBytes += packed.Bytes;
                    if (l == graph.LmHead) lmHeadReport = new($"int{config.Bits}", before, packed.Bytes);
                    double weightErr = RelativeError(w, dq!);
                    double? outErr = null, rtnErr = null;
                    if (rows is not null)
                    {
                        var e = new float[w.Length];
                        System.Numerics.Tensors.TensorPrimitives.Subtract(dq!, w, e);
                        outErr = AwqSearch.OutputError(e, l.N, l.K, rows) / Math.Max(1e-30, AwqSearch.OutputError(w, l.N, l.K, rows));
                    }
                    var choice = choices.GetValueOrDefault(l.Input);
                    if (choice is not null)
                    {
                        var wOrig = LoadNK(l.Weight);
                        var rtnPacked = q.Quantize(wOrig, l.N, l.K);
                        var e = BlockQuantizer.Dequantize(rtnPacked);
                        System.Numerics.Tensors.TensorPrimitives.Subtract(e, wOrig, e);
                        var origRows = calibration!.Stats[l.Input].Rows;
                        rtnErr = AwqSearch.OutputError(e, l.N, l.K, origRows) / Math.Max(1e-30, AwqSearch.OutputError(wOrig, l.N, l.K, origRows));
                    }
                    layerReports.Add(new(l.Name, l.Weight, l.K, l.N, l.Input, FoldName(groupOf[l.Weight].Fold, choice),
                        choice?.Alpha ?? 0, clipMean, weightErr, outErr, rtnErr));
                    continue;
                }
                if (t.Name == embedding && config.Embedding != "fp32")
                {
                    progress?.Report("quantizing the embedding");
                    int bits = config.Embedding == "int8" ? 8 : 4;
                    var eq = new BlockQuantizer(bits, config.GroupSize, config.Symmetric);
                    int rows = (int)t.Dims[0], cols = (int)t.Dims[1];
                    if (cols % config.GroupSize != 0)
                        throw SioException.InFile(modelPath, $"--embedding {config.Embedding}: group size {config.GroupSize} does not divide the embedding width {cols} (GatherBlockQuantized needs whole groups)");
                    var packed = eq.Quantize(MemoryMarshal.Cast<byte, float>(OnnxModelFile.ReadBytes(t, inputDir)).ToArray(), rows, cols);
                    g.Initializer(t.Name + "_Q", packed.B, DT.Uint8, rows, packed.B.Length / rows);
                    g.Initializer<float>(t.Name + "_scales", packed.Scales, DT.Float, rows, packed.KBlocks);
                    if (packed.ZeroPoints is not null) g.Initializer(t.Name + "_zp", packed.ZeroPoints, DT.Uint8, rows, packed.ZeroPoints.Length / rows);
                    embedReport = new(config.Embedding, (long)rows * cols * 4, packed.Bytes);
                    continue;
                }
                var bytes = OnnxModelFile.ReadBytes(t, inputDir);
                if (normDivide.TryGetValue(t.Name, out var s))
                {
                    var v = MemoryMarshal.Cast<byte, float>(bytes).ToArray();
                    System.Numerics.Tensors.TensorPrimitives.Divide(v, s, v);
                    bytes = MemoryMarshal.AsBytes(v.AsSpan()).ToArray();
                }
                else if (colDivide.TryGetValue(t.Name, out var d)) // a fold target that stays float: (K', K) columns ÷ s
                {
                    var v = MemoryMarshal.Cast<byte, float>(bytes).ToArray();
                    int cols = (int)t.Dims[1];
                    for (int r = 0; r < (int)t.Dims[0]; r++) System.Numerics.Tensors.TensorPrimitives.Divide(v.AsSpan(r * cols, cols), d, v.AsSpan(r * cols, cols));
                    bytes = MemoryMarshal.AsBytes(v.AsSpan()).ToArray();
                }
                if (t.Name == graph.LmHead?.Weight) lmHeadReport = new("fp32", bytes.Length, bytes.Length);
                if (t.Name == embedding) embedReport = new("fp32", bytes.Length, bytes.Length);
                g.Initializer(t.Name, bytes, (DT)t.DataType, t.Dims.ToArray());
            }

            if (stashed.Count > 0)
                throw new InvalidOperationException($"fused linears never all came past: {string.Join(", ", stashed.Keys.Select(FusedName))}");

            // nodes: MatMul → MatMulNBits; a Mul in front of groups whose scale could not be folded
            var mulFor = new Dictionary<string, string>();
            var emitted = new HashSet<LinearGroup>();
            foreach (var (input, inv) in insertMul)
                g.Initializer<float>($"{input}/awq_inv_scale", inv, DT.Float, inv.Length);
            foreach (var n in og.Node)
            {
                foreach (var i in n.Input)
                    if (insertMul.ContainsKey(i) && !mulFor.ContainsKey(i) && n.OpType == "MatMul" && quantized.ContainsKey(n.Input[1]))
                        mulFor[i] = g.Node("Mul", [i, $"{i}/awq_inv_scale"], $"{i}/awq_scale");
                if (config.FoldOnly && n.OpType == "MatMul" && mulFor.TryGetValue(n.Input[0], out var scaledInput))
                {
                    var m = n.Clone();
                    m.Input[0] = scaledInput;
                    g.Graph.Node.Add(m);
                }
                else if (!config.FoldOnly && n.OpType == "MatMul" && replaced.TryGetValue(n.Input[1], out var l))
                {
                    var a = mulFor.GetValueOrDefault(n.Input[0], n.Input[0]);
                    bool head8 = l == lmHead8;
                    fusedOf.TryGetValue(l.Weight, out var fused);
                    if (fused is not null && !emitted.Add(fused)) continue; // written with the group's first linear
                    var name = fused is null ? l.Weight : FusedName(fused);
                    long n_ = fused?.Layers.Sum(f => f.N) ?? l.N;
                    var inputs = new List<string> { a, name + "_Q", name + "_scales" };
                    if (!config.Symmetric) inputs.Add(name + "_zp");
                    if (biased.Contains(name)) inputs.AddRange(config.Symmetric ? ["", "", name + "_bias"] : ["", name + "_bias"]);
                    string[] outputs = fused is null ? n.Output.ToArray() : [name + "/fused"];
                    g.Node("MatMulNBits", inputs.ToArray(), fused is null ? n.Name + "NBits" : name + "/NBits", "com.microsoft", outputNames: outputs,
                        attributes: [Attr("K", (long)l.K), Attr("N", n_), Attr("bits", head8 ? 8L : config.Bits), Attr("block_size", (long)config.GroupSize),
                            Attr("accuracy_level", (long)config.AccuracyLevel)]);
                    if (fused is not null)
                    {
                        var sizes = g.Vector(name + "/split_sizes", fused.Layers.Select(f => (long)f.N).ToArray());
                        g.Node("Split", [outputs[0], sizes], name + "/Split", outputNames: fused.Layers.Select(f => f.Node.Output[0]).ToArray(), attributes: [Attr("axis", -1L)]);
                    }
                }
                else if (n.OpType == "Gather" && n.Input[0] == embedding && config.Embedding != "fp32")
                {
                    var inputs = new List<string> { embedding + "_Q", n.Input[1], embedding + "_scales" };
                    if (!config.Symmetric) inputs.Add(embedding + "_zp");
                    g.Node("GatherBlockQuantized", inputs.ToArray(), n.Name + "BlockQuantized", "com.microsoft", outputNames: n.Output.ToArray(),
                        attributes: [Attr("gather_axis", 0L), Attr("quantize_axis", 1L), Attr("block_size", (long)config.GroupSize),
                            Attr("bits", config.Embedding == "int8" ? 8L : 4L)]);
                }
                else g.Graph.Node.Add(n.Clone());
            }
            g.Save(Path.Combine(temp, DecoderGraph.ModelFile), model.MetadataProps.Select(m => (m.Key, m.Value)));
        }

        foreach (var f in Directory.GetFiles(inputDir))
        {
            var name = Path.GetFileName(f);
            if (name.StartsWith("tokenizer") || name is "special_tokens_map.json" or GenAiConfig.FileName)
                File.Copy(f, Path.Combine(temp, name));
        }
        var tag = $"{config.Method}-int{config.Bits}-g{config.GroupSize}{(config.Symmetric ? "-sym" : "")}-acc{config.AccuracyLevel}";
        var outManifest = manifest with { Dtype = config.FoldOnly ? manifest.Dtype : $"int{config.Bits}", ModelFile = DecoderGraph.ModelFile, Steps = [.. manifest.Steps, $"quantize:{tag}"], CreatedUtc = DateTime.UtcNow };
        outManifest.Save(temp);
        var report = new QuantizationReport
        {
            Method = config.Method, Bits = config.Bits, GroupSize = config.GroupSize, Symmetric = config.Symmetric, AccuracyLevel = config.AccuracyLevel,
            Bf16Scales = config.Bf16Scales,
            Rounding = config.Method == "awq" ? config.Rounding : null, Refined = config.Method == "awq" && config.Refine, BiasCorrection = config.Method == "awq" && config.BiasCorrection,
            Calibration = calibration is null ? null : new(Path.GetFullPath(config.Calibration!), calibration.DatasetSha256, calibration.Samples, calibration.Tokens, config.SearchRows),
            Layers = layerReports,
            Sizes = new(fp32Bytes, quantBytes, fp32Bytes > 0 ? (double)quantBytes / fp32Bytes : 0, FolderModelBytes(inputDir), FolderModelBytes(temp)),
            LmHead = lmHeadReport,
            Embedding = embedReport,
            SecondsTaken = clock.Elapsed.TotalSeconds,
        };
        File.WriteAllText(Path.Combine(temp, QuantizationReport.FileName), JsonSerializer.Serialize(report, ModelManifest.Json));
        output.Commit();
        return report;
    }

    /// <summary>Groups of int4 linears sharing an input that are written as one MatMulNBits: every member quantized, each
    /// with its own weight and a single output.</summary>
    static List<LinearGroup> FusedGroups(LinearGraph graph, Dictionary<string, LinearLayer> quantized, LinearLayer? lmHead8) =>
        graph.Groups.Where(gr => gr.Layers.Count > 1
            && gr.Layers.All(l => quantized.ContainsKey(l.Weight) && l != lmHead8 && l.Node.Output.Count == 1)
            && gr.Layers.Select(l => l.Weight).Distinct().Count() == gr.Layers.Count).ToList();

    static string FusedName(LinearGroup group) => group.Layers[0].Weight + "_fused";

    /// <summary>Packed linears stacked along N (their rows one after another), with their biases (zeros where one has none).</summary>
    static (BlockQuantizer.Packed Packed, float[]? Bias) Concatenate(IReadOnlyList<(BlockQuantizer.Packed Packed, float[]? Bias)> parts)
    {
        var first = parts[0].Packed;
        var packed = first with
        {
            N = parts.Sum(p => p.Packed.N),
            B = parts.SelectMany(p => p.Packed.B).ToArray(),
            Scales = parts.SelectMany(p => p.Packed.Scales).ToArray(),
            ZeroPoints = first.ZeroPoints is null ? null : parts.SelectMany(p => p.Packed.ZeroPoints!).ToArray(),
        };
        var bias = parts.All(p => p.Bias is null) ? null : parts.SelectMany(p => p.Bias ?? new float[p.Packed.N]).ToArray();
        return (packed, bias);
    }

    static string FoldName(Fold f, AwqSearch.ScaleChoice? choice) => choice is null || choice.Alpha == 0 ? "none" : f switch
    {
        Fold.NormWeight n => $"norm:{n.Initializer}",
        Fold.ProducerColumns p => $"producer:{p.Weight}",
        _ => "mul",
    };

    static double RelativeError(float[] reference, float[] approx)
    {
        double num = 0, den = 0;
        for (int i = 0; i < reference.Length; i++) { double d = approx[i] - reference[i]; num += d * d; den += (double)reference[i] * reference[i]; }
        return den > 0 ? num / den : 0;
    }

    static long FolderModelBytes(string dir) => Directory.GetFiles(dir, "model.onnx*").Sum(f => new FileInfo(f).Length);
}
