using Sio.Generation;

namespace Sio.Speculative;

/// <summary>A draft must share the target's token ids: the same pieces under the same ids and the same special tokens.</summary>
public static class VocabularyCheck
{
    public static void Require(Model draft, Model target)
    {
        var d = draft.Tokenizer;
        var t = target.Tokenizer;
        string Where() => $"draft {draft.Folder} is incompatible with target {target.Folder}";
        // the pieces first: the first differing ids say best what is wrong (another family's vocabulary, another version)
        var differing = Enumerable.Range(0, Math.Min(d.VocabSize, t.VocabSize))
            .Where(i => d.Pieces[i] != t.Pieces[i] || d.IsSpecial(i) != t.IsSpecial(i)).Take(3).ToList();
        if (differing.Count > 0)
            throw new SioException($"{Where()}: the vocabularies differ, first at " +
                string.Join("; ", differing.Select(i => $"token {i}: \"{Escape(d.Pieces[i])}\" in the draft, \"{Escape(t.Pieces[i])}\" in the target")));
        if (draft.Config.BosTokenId != target.Config.BosTokenId || draft.Config.EosTokenId != target.Config.EosTokenId)
            throw new SioException($"{Where()}: special tokens differ (BOS {draft.Config.BosTokenId} vs {target.Config.BosTokenId}, EOS {draft.Config.EosTokenId} vs {target.Config.EosTokenId})");
        if (draft.Config.VocabSize != target.Config.VocabSize)
            throw new SioException($"{Where()}: vocabulary sizes differ ({draft.Config.VocabSize} vs {target.Config.VocabSize})");
        if (d.VocabSize != t.VocabSize)
            throw new SioException($"{Where()}: the tokenizers hold {d.VocabSize} and {t.VocabSize} tokens");
    }

    static string Escape(string s) => s.Replace("\n", "\\n");
}
