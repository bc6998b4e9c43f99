using System.CommandLine;
using Sio.Models;

namespace Sio.Cli;

public static class ImportCommand
{
    public static Command Create()
    {
        var source = new Argument<string?>("source") { Arity = ArgumentArity.ZeroOrOne, Description = "A llama2.c checkpoint (.bin) or a Hugging Face folder (config.json + *.safetensors)." };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Tokenizer file (tokenizer.bin, tokenizer.json or tokenizer.model); default: found beside the source." };
        var output = new Option<string>("--out") { Description = "The model folder to write (replaced if it is a sio model folder).", Required = true };
        var synthetic = new Option<bool>("--synthetic") { Description = "Build a model with random weights of the given shape instead of reading a checkpoint." };
        var dim = new Option<int>("--dim") { Description = "Synthetic: model width.", DefaultValueFactory = _ => 768 };
        var hidden = new Option<int>("--hidden") { Description = "Synthetic: feed-forward width.", DefaultValueFactory = _ => 2048 };
        var layers = new Option<int>("--layers") { Description = "Synthetic: layers.", DefaultValueFactory = _ => 12 };
        var heads = new Option<int>("--heads") { Description = "Synthetic: query heads.", DefaultValueFactory = _ => 12 };
        var kvHeads = new Option<int?>("--kv-heads") { Description = "Synthetic: key/value heads (default: --heads)." };
        var vocab = new Option<int>("--vocab") { Description = "Synthetic: vocabulary size.", DefaultValueFactory = _ => 32000 };
        var context = new Option<int>("--context") { Description = "Synthetic: context length.", DefaultValueFactory = _ => 1024 };
        var tied = new Option<bool>("--tie-embeddings") { Description = "Synthetic: share the classifier with the token embedding (as llama2.c's stories models do).", DefaultValueFactory = _ => true };
        var experts = new Option<int>("--experts") { Description = "Synthetic: a sparse mixture of this many experts per layer (Mixtral's layout; 0: a dense feed-forward, whose width --hidden then is each expert's).", DefaultValueFactory = _ => 0 };
        var expertsPerToken = new Option<int>("--experts-per-token") { Description = "Synthetic: experts each token is routed to (top k, renormalized).", DefaultValueFactory = _ => 2 };
        var seed = new Option<int>("--seed") { Description = "Synthetic: weight seed.", DefaultValueFactory = _ => 1234 };
        var json = new Option<bool>("--json") { Description = "Print the manifest as JSON." };
        var cmd = new Command("import", "Turn a checkpoint into a sio model folder: model.onnx (+ external data), genai_config.json, tokenizer, sio.json.")
        {
            source, tokenizer, output, synthetic, dim, hidden, layers, heads, kvHeads, vocab, context, tied, experts, expertsPerToken, seed, json,
        };
        cmd.SetAction(p =>
        {
            var request = new ImportRequest { Source = p.GetValue(source), Tokenizer = p.GetValue(tokenizer), Seed = p.GetValue(seed) };
            if (p.GetValue(synthetic))
            {
                if (request.Source is not null) throw new SioException("import: give either a source or --synthetic, not both");
                request = request with
                {
                    Synthetic = new DecoderConfig
                    {
                        Dim = p.GetValue(dim), HiddenDim = p.GetValue(hidden), Layers = p.GetValue(layers), Heads = p.GetValue(heads),
                        KvHeads = p.GetValue(kvHeads) ?? p.GetValue(heads), VocabSize = p.GetValue(vocab), ContextLength = p.GetValue(context),
                        TiedEmbeddings = p.GetValue(tied),
                        Experts = p.GetValue(experts), ExpertsPerToken = p.GetValue(experts) > 0 ? p.GetValue(expertsPerToken) : 0,
                        Architecture = p.GetValue(experts) > 0 ? "MixtralForCausalLM" : "LlamaForCausalLM",
                    },
                };
            }
            else if (request.Source is null) throw new SioException("import: give a checkpoint (llama2.c .bin or Hugging Face folder), or --synthetic with a shape");
            var outDir = p.GetValue(output)!;
            var manifest = ModelImporter.Import(request, outDir, Cli.Progress("import"));
            Cli.EndProgress();
            if (p.GetValue(json)) Cli.WriteJson(p.InvocationConfiguration.Output, manifest);
            else
            {
                var c = manifest.Config;
                p.InvocationConfiguration.Output.WriteLine(
                    $"imported {manifest.Source.Kind} {manifest.Architecture} ({c.ParameterCount / 1e6:F2}M parameters: dim {c.Dim}, hidden {c.HiddenDim}{(c.Experts > 0 ? $" × {c.Experts} experts, top {c.ExpertsPerToken}" : "")}, {c.Layers} layers, {c.Heads}/{c.KvHeads} heads, vocab {c.VocabSize}, context {c.ContextLength}) → {Path.GetFullPath(outDir)}");
            }
            return 0;
        });
        return cmd;
    }
}
