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
        if (draft.Config.BosTokenId != target.Config.BosTokenId || draft.Config.EosTokenId != target.Config.EosTokenId)
            throw new SioException($"{Where()}: special tokens differ (BOS {draft.Config.BosTokenId} vs {target.Config.BosTokenId}, EOS {draft.Config.EosTokenId} vs {target.Config.EosTokenId})");
        if (draft.Config.VocabSize != target.Config.VocabSize)
            throw new SioException($"{Where()}: vocabulary sizes differ ({draft.Config.VocabSize} vs {target.Config.VocabSize})");
        int n = Math.Min(d.VocabSize, t.VocabSize);
        for (int i = 0; i < n; i++)
            if (d.Pieces[i] != t.Pieces[i] || d.IsSpecial(i) != t.IsSpecial(i))
                throw new SioException($"{Where()}: token {i} is \"{Escape(d.Pieces[i])}\" in the draft and \"{Escape(t.Pieces[i])}\" in the target");
        if (d.VocabSize != t.VocabSize)
            throw new SioException($"{Where()}: the tokenizers hold {d.VocabSize} and {t.VocabSize} tokens");
    }

    static string Escape(string s) => s.Replace("\n", "\\n");
}
