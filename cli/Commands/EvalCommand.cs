using System.CommandLine;
using Sio.Evaluation;
using Sio.Generation;

namespace Sio.Cli;

public static class EvalCommand
{
    public static Command Create()
    {
        var dir = new Argument<string>("model") { Description = "A sio model folder." };
        var dataset = new Option<string>("--dataset") { Description = "JSONL ({text}, {prompt,response}, OpenOrca {system_prompt,question,response}, chat messages) or plain text.", Required = true };
        var maxRecords = new Option<int>("--max-records") { Description = "Score at most this many records (0: all).", DefaultValueFactory = _ => 0 };
        var maxTokens = new Option<int>("--max-tokens-per-record") { Description = "Cut each record to this many tokens, BOS included (0: the model's context).", DefaultValueFactory = _ => 0 };
        var baseline = new Option<string?>("--baseline") { Description = "A baseline model folder (e.g. the fp32 original): adds its perplexity, the KL divergence of the model's next-token distributions from the baseline's (mean, p99, max, nats per token), how often both put the same token on top, and the greedy token agreement with it." };
        var prompts = new Option<int>("--agreement-prompts") { Description = "Prompts for the greedy agreement with --baseline.", DefaultValueFactory = _ => 50 };
        var agreementTokens = new Option<int>("--agreement-tokens") { Description = "Tokens generated per prompt for the agreement.", DefaultValueFactory = _ => 32 };
        var json = new Option<bool>("--json") { Description = "Print records, tokens_scored, mean_nll, perplexity as JSON." };
        var cmd = new Command("eval", "Perplexity of a model on a dataset by teacher forcing (prompt/response rows: response tokens only).")
        {
            dir, dataset, maxRecords, maxTokens, baseline, prompts, agreementTokens, json,
        };
        cmd.SetAction(p =>
        {
            if (p.GetValue(maxRecords) < 0 || p.GetValue(maxTokens) < 0) throw new SioException("--max-records and --max-tokens-per-record must be ≥ 0");
            if (p.GetValue(maxTokens) == 1) throw new SioException("--max-tokens-per-record must be at least 2 (BOS and one scored token)");
            using var model = Model.Load(p.GetValue(dir)!);
            var data = DatasetReader.Read(p.GetValue(dataset)!, p.GetValue(maxRecords) is > 0 and var m ? m : int.MaxValue);
            var progress = Cli.Progress("eval");
            var result = Perplexity.Evaluate(model, data, p.GetValue(maxTokens), new Progress<int>(n => progress.Report($"{n}/{data.Records.Count} records")));
            AgreementResult? agreement = null;
            DivergenceResult? divergence = null;
            if (p.GetValue(baseline) is string baseDir)
            {
                using var baseModel = Model.Load(baseDir);
                if (baseModel.Tokenizer.Fingerprint() != model.Tokenizer.Fingerprint())
                    throw SioException.InFile(baseDir, "the baseline's vocabulary differs from the model's; agreement needs the same token ids");
                divergence = Divergence.Compare(model, baseModel, data, p.GetValue(maxTokens), new Progress<int>(n => progress.Report($"KL divergence {n}/{data.Records.Count} records")));
                progress.Report("greedy agreement");
                agreement = GreedyAgreement.Compare(model, baseModel, data, p.GetValue(prompts), p.GetValue(agreementTokens));
            }
            Cli.EndProgress();
            var output = p.InvocationConfiguration.Output;
            if (p.GetValue(json))
                Cli.WriteJson(output, new
                {
                    records = result.Records,
                    tokens_scored = result.TokensScored,
                    mean_nll = result.MeanNll,
                    perplexity = result.Perplexity,
                    skipped = result.Skipped,
                    dataset_sha256 = data.Sha256,
                    baseline = divergence is null ? null : new
                    {
                        model = Path.GetFullPath(p.GetValue(baseline)!),
                        perplexity = divergence.ReferencePerplexity, // the baseline's own, on the same tokens, from the same pass
                        perplexity_increase = result.Perplexity - divergence.ReferencePerplexity,
                        token_agreement = agreement!.TokenAgreement,
                        exact_match = agreement.ExactMatch,
                        agreement_prompts = agreement.Prompts,
                        agreement_tokens = agreement.TokensPerPrompt,
                        agreement_empty_both = agreement.EmptyBoth,
                        kld_mean = divergence.MeanKld,
                        kld_p99 = divergence.P99Kld,
                        kld_max = divergence.MaxKld,
                        same_top_token = divergence.SameTopToken,
                        kld_tokens = divergence.Tokens,
                    },
                });
            else
            {
                output.WriteLine($"perplexity {result.Perplexity:F4} (mean NLL {result.MeanNll:F5}) over {result.TokensScored} tokens in {result.Records} records{(result.Skipped > 0 ? $", {result.Skipped} skipped" : "")}");
                if (divergence is not null)
                {
                    output.WriteLine($"KL divergence from the baseline: mean {divergence.MeanKld:G4}, p99 {divergence.P99Kld:G4}, max {divergence.MaxKld:G4} nats per token; same top token {divergence.SameTopToken:P2} over {divergence.Tokens} tokens");
                    output.WriteLine($"baseline perplexity {divergence.ReferencePerplexity:F4} (+{result.Perplexity - divergence.ReferencePerplexity:F4}); greedy token agreement {agreement!.TokenAgreement:P1}, identical continuations {agreement.ExactMatch:P0} over {agreement.Prompts} prompts × {agreement.TokensPerPrompt} tokens{(agreement.EmptyBoth > 0 ? $" ({agreement.EmptyBoth} prompts both models ended at once left out)" : "")}");
                }
            }
            return 0;
        });
        return cmd;
    }
}
