using System.CommandLine;
using Sio.Generation;

namespace Sio.Cli;

public static class GenerateCommand
{
    public static Command Create()
    {
        var dir = new Argument<string>("model") { Description = "A sio model folder." };
        var prompt = new Option<string?>("--prompt") { Description = "Text to continue; without it generation starts from BOS alone." };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Most new tokens (also bounded by the context).", DefaultValueFactory = _ => 256 };
        var temperature = new Option<float>("--temperature") { Description = "0 is greedy; higher is more random.", DefaultValueFactory = _ => 0f };
        var topK = new Option<int>("--top-k") { Description = "Sample among the k most likely tokens (0: all).", DefaultValueFactory = _ => 0 };
        var topP = new Option<float>("--top-p") { Description = "Sample among the most likely tokens whose probability adds up to p.", DefaultValueFactory = _ => 1f };
        var seed = new Option<int?>("--seed") { Description = "Seed for sampling." };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime intra-op threads (0: one per core).", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object: prompt_token_ids (BOS included), token_ids, text, timings." };
        var cmd = new Command("generate", "Generate text with a model folder, streaming tokens as they come.")
        {
            dir, prompt, maxTokens, temperature, topK, topP, seed, threads, json,
        };
        cmd.SetAction(p =>
        {
            var options = new GenerationOptions
            {
                MaxTokens = p.GetValue(maxTokens),
                Sampling = new SamplingOptions { Temperature = p.GetValue(temperature), TopK = p.GetValue(topK), TopP = p.GetValue(topP), Seed = p.GetValue(seed) }.Validate(),
            };
            if (options.MaxTokens < 0) throw new SioException($"--max-tokens must be ≥ 0, got {options.MaxTokens}");
            using var model = Model.Load(p.GetValue(dir)!, new ModelOptions { Threads = p.GetValue(threads) });
            var promptIds = model.Tokenizer.Encode(p.GetValue(prompt) ?? "");
            var output = p.InvocationConfiguration.Output;
            bool asJson = p.GetValue(json);
            if (!asJson && p.GetValue(prompt) is string text) output.Write(text);
            var result = TextGeneration.Generate(model, promptIds, options, asJson ? null : (_, piece) => { output.Write(piece); output.Flush(); });
            if (asJson)
                Cli.WriteJson(output, new
                {
                    prompt_token_ids = result.PromptTokenIds,
                    token_ids = result.TokenIds,
                    text = result.Text,
                    finish_reason = result.FinishReason,
                    prefill_ms = Math.Round(result.PrefillMs, 3),
                    decode_tokens_per_second = Math.Round(result.DecodeTokensPerSecond, 2),
                });
            else
            {
                output.WriteLine();
                Console.Error.WriteLine($"[{result.TokenIds.Count} tokens, prefill {result.PrefillMs:F1} ms, decode {result.DecodeTokensPerSecond:F1} tok/s, {result.FinishReason}]");
            }
            return 0;
        });
        return cmd;
    }
}
