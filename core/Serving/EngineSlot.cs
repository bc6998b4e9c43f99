using System.Diagnostics;
using Sio.Generation;
using Sio.Speculative;
using Sio.Tokenization;

namespace Sio.Serving;

/// <summary>A request in a batch row: its sampler, output so far and streaming decoder.</summary>
sealed class EngineSlot(GenerationJob job, Model model, string drafter)
{
    public GenerationJob Job { get; } = job;
    public Sampler Sampler { get; } = new(job.Options.Sampling);
    public List<int> Output { get; } = new();
    public System.Text.StringBuilder Text { get; } = new();
    public TokenStream Stream { get; } = model.Tokenizer.CreateStream(job.Prompt[^1]);
    public HashSet<int> Stops { get; } = (job.Options.IgnoreModelStopTokens ? [] : model.StopTokens).Concat(job.Options.StopTokens).ToHashSet();
    /// <summary>Cuts the text at the first stop sequence (the request then ends at once).</summary>
    public StopMatcher Matcher { get; } = new(job.Options.StopStrings);
    public Stopwatch Clock { get; } = Stopwatch.StartNew();
    public double PrefillMs { get; set; }
    public double LastTokenMs { get; set; } = -1;
    /// <summary>The request's age at its first token (its time to first token), in seconds.</summary>
    public double FirstTokenAge { get; set; }
    /// <summary>The spans open for this request: reading its prompt, then decoding.</summary>
    public Activity? PrefillSpan { get; set; }
    public Activity? DecodeSpan { get; set; }
    /// <summary>The last token, not yet run through the model.</summary>
    public int Pending { get; set; }
    /// <summary>Prompt and output so far (what a drafter continues).</summary>
    public List<int> Context { get; } = [.. job.Prompt];
    public SpeculativeStats Speculative { get; } = new() { Drafter = drafter };
    /// <summary>The last verification met a near-tie: the next step for this row is a plain one.</summary>
    public bool PlainNext { get; set; }
    /// <summary>A request alone on the engine with a draft model decodes through its own speculative decoder (and
    /// moves into its batch row when company arrives).</summary>
    public SpeculativeDecoder? Solo { get; set; }
    /// <summary>No other request shared the engine during this one (its speed says what decoding alone costs).</summary>
    public bool Alone { get; set; } = true;
    /// <summary>Prompt tokens already in the cache; the row decodes once the whole prompt is in.</summary>
    public int Prefilled { get; set; }
    public bool Prefilling => Prefilled < Job.Prompt.Count;
    /// <summary>Readies the sampler: the prompt for the repetition penalty, the stop tokens and budget for JSON output.</summary>
    public EngineSlot Prepared(Model model)
    {
        Sampler.Prime(Job.Prompt);
        Sampler.ConstrainToJson(model.Tokenizer, Stops, Job.Options.MaxTokens);
        return this;
    }

    /// <summary>Tokens the row may still take: what max_tokens leaves.</summary>
    public int Remaining => Job.Options.MaxTokens - Output.Count;
}
