using Sio.Pipeline;
using Sio.Speculative;

namespace Sio.Tests;

/// <summary>A drafter is parsed once into a typed record; its string form round-trips, and a bad one names the field.</summary>
[Trait("Category", "fast")]
public class DrafterSpecTests
{
    [Theory]
    [InlineData("none", DrafterKind.None, null)]
    [InlineData("ngram", DrafterKind.Ngram, null)]
    [InlineData("self-int4", DrafterKind.SelfInt4, null)]
    [InlineData("datastore", DrafterKind.Datastore, null)]
    [InlineData("datastore:data/store.jsonl", DrafterKind.Datastore, "data/store.jsonl")]
    [InlineData("draft:artifacts/models/0123abcd", DrafterKind.DraftModel, "artifacts/models/0123abcd")]
    [InlineData("draft:/models/with:colon", DrafterKind.DraftModel, "/models/with:colon")]
    public void EveryFormRoundTrips(string text, DrafterKind kind, string? path)
    {
        var spec = DrafterSpec.Parse(text);
        Assert.Equal((kind, path), (spec.Kind, spec.Path));
        Assert.Equal(text, spec.ToString());
        Assert.Equal(kind is DrafterKind.SelfInt4 or DrafterKind.DraftModel, spec.UsesDraftModel);
    }

    [Theory]
    [InlineData("eagle", "must be none, ngram")]
    [InlineData("draft", "needs a path after the colon")]
    [InlineData("draft:", "needs a path after the colon")]
    [InlineData("datastore:", "needs a path after the colon")]
    [InlineData("ngram:4", "takes no ':' argument")]
    public void ABadDrafterIsRefusedNamingTheField(string text, string why)
    {
        var e = Assert.Throws<SioException>(() => DrafterSpec.Parse(text, "--speculative"));
        Assert.StartsWith("--speculative", e.Message);
        Assert.Contains(why, e.Message);
        Assert.Throws<SioException>(() => new SpeculativeOptions { Drafter = text }.Validate());
    }

    [Fact]
    public void ARecipeTakesTheDraftersARunCanBuild()
    {
        Assert.Equal(new DrafterSpec(DrafterKind.DraftModel, "artifacts/models/k"), Recipe.Parse("speculative:draft:artifacts/models/k").OfType<SpeculativePass>().Single().Drafter);
        // a datastore file is the serving engine's; the pipeline builds its own datastore from the calibration half
        Assert.Contains("unknown drafter", Assert.Throws<SioException>(() => Recipe.Parse("speculative:datastore:x.jsonl")).Message);
        Assert.Contains("unknown drafter", Assert.Throws<SioException>(() => Recipe.Parse("speculative:none")).Message);
    }

    [Fact]
    public void TheRecipeDecidesTheQuantizationPolicyOnce()
    {
        var served = Recipe.Parse("awq-int4:g128,speculative:ngram").OfType<QuantizePass>().Single().Config;
        var plain = Recipe.Parse("awq-int4:g128").OfType<QuantizePass>().Single().Config;
        Assert.Equal((0, "fp32", 128), (served.AccuracyLevel, served.LmHead, served.GroupSize));
        Assert.Equal((4, "int8", 128), (plain.AccuracyLevel, plain.LmHead, plain.GroupSize));
    }
}
