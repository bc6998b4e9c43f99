using Sio.Generation;

namespace Sio.Evaluation;

/// <summary>
/// A record's prompt in a model's tokens, as the model would be prompted when serving: conversation rows go through
/// the model's chat template (its own BOS and turn markers); other rows, and models without a template, are plain text
/// with BOS. Evaluation, calibration-free benchmarks and speculative measurements all start here.
/// </summary>
public static class RecordPrompt
{
    public static List<int> Ids(Model model, DatasetRecord r)
    {
        if (r.Turns is { Count: > 0 } turns && !model.ChatTemplate.IsPlain)
            return model.ChatTemplate.Tokenize(model.Tokenizer, model.ChatTemplate.Render(turns));
        return model.Tokenizer.Encode(r.IsPromptResponse ? r.Prompt! : r.Text!);
    }
}
