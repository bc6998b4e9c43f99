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
        var speculative = new Option<string>("--speculative") { Description = "Drafter: none, ngram (prompt lookup), self-int4 (the target's int4 copy, built and cached on first use) or draft:DIR (a model with the same vocabulary).", DefaultValueFactory = _ => "none" };
        var draftTokens = new Option<string>("--draft-tokens") { Description = "Tokens drafted per step: 1–32, or auto (adapts to acceptance and cost; off when drafting does not pay).", DefaultValueFactory = _ => "auto" };
        var engine = Cli.EngineOption();
        var chat = new Option<bool>("--chat") { Description = "Send --prompt as a user message through the model's chat template (tokenizer_config.json); generation ends at the model's end-of-turn token." };
        var system = new Option<string?>("--system") { Description = "With --chat: a system message before the user's." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object: prompt_token_ids (BOS included), token_ids, text, timings." };
        var cmd = new Command("generate", "Generate text with a model folder, streaming tokens as they come.")
        {
            dir, prompt, maxTokens, temperature, topK, topP, seed, threads, speculative, draftTokens, engine, chat, system, json,
        };
        cmd.SetAction(p =>
        {
            var spec = new Speculative.SpeculativeOptions { Drafter = p.GetValue(speculative)!, DraftTokens = Speculative.SpeculativeOptions.ParseDraftTokens(p.GetValue(draftTokens)) }.Validate();
            var options = new GenerationOptions
            {
                Speculative = spec,
                MaxTokens = p.GetValue(maxTokens),
                Sampling = new SamplingOptions { Temperature = p.GetValue(temperature), TopK = p.GetValue(topK), TopP = p.GetValue(topP), Seed = p.GetValue(seed) }.Validate(),
            };
            if (options.MaxTokens < 0) throw new SioException($"--max-tokens must be ≥ 0, got {options.MaxTokens}");
            var modelOptions = new ModelOptions { Threads = p.GetValue(threads), Engine = p.GetValue(engine)! }.ForDrafter(spec);
            var loadClock = System.Diagnostics.Stopwatch.StartNew();
            using var model = Model.Load(p.GetValue(dir)!, modelOptions);
            double loadMs = loadClock.Elapsed.TotalMilliseconds;
            if (model.Warning is not null) p.InvocationConfiguration.Error.WriteLine($"warning: {model.Warning}");
            using var drafter = Speculative.DrafterFactory.Create(spec, model, modelOptions, Cli.Progress("generate"));
            Cli.EndProgress();
            var output = p.InvocationConfiguration.Output;
            bool asJson = p.GetValue(json);
            List<int> promptIds;
            if (p.GetValue(chat))
            {
                var template = model.ChatTemplate;
                var turns = new List<(string, string)>();
                if (p.GetValue(system) is string sys) turns.Add(("system", sys));
                turns.Add(("user", p.GetValue(prompt) ?? ""));
                promptIds = template.Tokenize(model.Tokenizer, template.Render(turns));
            }
            else
            {
                if (p.GetValue(system) is not null) throw new SioException("--system needs --chat");
                promptIds = model.Tokenizer.Encode(p.GetValue(prompt) ?? "");
                if (!asJson && p.GetValue(prompt) is string text) output.Write(text);
            }
            var result = TextGeneration.Generate(model, promptIds, options, asJson ? null : (_, piece) => { output.Write(piece); output.Flush(); }, drafter: drafter);
            var st = result.Speculative;
            if (asJson)
                Cli.WriteJson(output, new
                {
                    prompt_token_ids = result.PromptTokenIds,
                    token_ids = result.TokenIds,
                    text = result.Text,
                    finish_reason = result.FinishReason,
                    load_ms = Math.Round(loadMs, 3),
                    graph = model.GraphFile,
                    engine = model.Engine,
                    prefill_ms = Math.Round(result.PrefillMs, 3),
                    decode_tokens_per_second = Math.Round(result.DecodeTokensPerSecond, 2),
                    speculative = spec.Enabled ? SpeculativeJson(st) : null,
                });
            else
            {
                output.WriteLine();
                p.InvocationConfiguration.Error.WriteLine($"[{result.TokenIds.Count} tokens, prefill {result.PrefillMs:F1} ms, decode {result.DecodeTokensPerSecond:F1} tok/s, {result.FinishReason}" +
                    (spec.Enabled ? $"; {st.Drafter}: acceptance {st.AcceptanceRate:P0}, {st.MeanAcceptedLength:F2} tokens per target step]" : "]"));
            }
            return 0;
        });
        return cmd;
    }

    internal static object SpeculativeJson(Speculative.SpeculativeStats st) => new
    {
        drafter = st.Drafter,
        proposed = st.Proposed,
        accepted = st.Accepted,
        acceptance_rate = st.AcceptanceRate,
        mean_accepted_length = st.MeanAcceptedLength,
        expected_accepted_length = st.ExpectedAcceptedLength,
        mean_draft_length = st.MeanDraftLength,
        target_steps = st.TargetSteps,
        exact_replays = st.ExactReplays,
        target_ms = st.TargetMs,
        draft_ms = st.DraftMs,
    };
}
