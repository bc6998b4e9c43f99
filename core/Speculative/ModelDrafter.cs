using Sio.Generation;

namespace Sio.Speculative;

/// <summary>
/// A draft model (a smaller model of the same family, or the target's own int4 copy) decoding
/// ahead of the target. Its cache is re-synced to each context by rewinding to the common prefix.
/// </summary>
public sealed class ModelDrafter : IDrafter
{
    readonly Model _model;
    readonly Generator _generator;
    readonly bool _ownsModel;

    public ModelDrafter(Model draft, Model target, string name, bool ownsModel)
    {
        VocabularyCheck.Require(draft, target);
        _model = draft;
        _ownsModel = ownsModel;
        _generator = new Generator(draft);
        Name = name;
    }

    public string Name { get; }
    public Model Model => _model;

    public DraftProposal Draft(IReadOnlyList<int> context, int k, Sampler? sampler)
    {
        int common = 0, have = _generator.Length;
        while (common < have && common < context.Count && _generator.Sequence[common] == context[common]) common++;
        if (common == context.Count) common--; // the last token must be fed again to get its logits
        k = Math.Min(k, _generator.Capacity - context.Count);
        if (k <= 0 || common < 0) return DraftProposal.None;
        _generator.RewindTo(common);
        var tail = new int[context.Count - common];
        for (int i = 0; i < tail.Length; i++) tail[i] = context[common + i];
        _generator.AppendTokens(tail);
        var tokens = new int[k];
        var dists = sampler is null ? null : new float[k][];
        for (int i = 0; i < k; i++)
        {
            if (i > 0) _generator.AppendTokens([tokens[i - 1]]);
            if (sampler is null) tokens[i] = Sampler.ArgMax(_generator.LastLogits);
            else
            {
                dists![i] = sampler.Distribution(_generator.LastLogits).ToArray();
                tokens[i] = sampler.Draw(dists[i]);
            }
        }
        return new DraftProposal(tokens, dists);
    }

    public void Dispose()
    {
        _generator.Dispose();
        if (_ownsModel) _model.Dispose();
    }
}
