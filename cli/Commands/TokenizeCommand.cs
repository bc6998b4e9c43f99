using System.CommandLine;
using System.Text.Json.Nodes;
using Sio.Serving;
using Sio.Tokenization;

namespace Sio.Cli;

/// <summary>`sio tokenize`: a text's token ids and pieces, or a chat's rendered prompt and its ids, as llama.cpp's tokenize tool prints them.</summary>
public static class TokenizeCommand
{
    public static Command Create()
    {
        var source = new Argument<string>("tokenizer") { Description = "A sio model folder, a Hugging Face folder, or a tokenizer file (tokenizer.json, tokenizer.model, tokenizer.bin)." };
        var text = new Option<string?>("--text") { Description = "The text to tokenize (special-token names in it stay text)." };
        var file = new Option<string?>("--file") { Description = "Tokenize this file's text instead." };
        var chat = new Option<string?>("--chat") { Description = "A JSON file of messages ([{\"role\", \"content\"}, …] or {\"messages\": […], \"tools\": […]}): render it with the model's chat template, then tokenize (its markers become special tokens)." };
        var noGenerationPrompt = new Option<bool>("--no-generation-prompt") { Description = "With --chat: do not end the prompt with the assistant's turn opener." };
        var json = new Option<bool>("--json") { Description = "Print {\"ids\": […], \"pieces\": […], \"text\": \"…\"} (pieces as the vocabulary spells them)." };
        var cmd = new Command("tokenize", "Print the token ids and pieces of a text, or of a chat rendered with the model's own template.")
        {
            source, text, file, chat, noGenerationPrompt, json,
        };
        cmd.SetAction(p =>
        {
            int given = (p.GetValue(text) is null ? 0 : 1) + (p.GetValue(file) is null ? 0 : 1) + (p.GetValue(chat) is null ? 0 : 1);
            if (given != 1) throw new SioException("tokenize: give exactly one of --text, --file or --chat");
            var tokenizer = TokenizerLoader.Open(p.GetValue(source)!, out var folder);
            string input;
            List<int> ids;
            if (p.GetValue(chat) is { } chatFile)
            {
                var template = ChatTemplate.ForModel(folder);
                var (messages, tools) = ReadChat(chatFile);
                input = template.Render(messages, !p.GetValue(noGenerationPrompt), tools);
                ids = template.Tokenize(tokenizer, input);
            }
            else
            {
                input = p.GetValue(text) ?? ReadText(p.GetValue(file)!);
                ids = tokenizer.Encode(input);
            }
            var output = p.InvocationConfiguration.Output;
            if (p.GetValue(json))
                Cli.WriteJson(output, new { ids, pieces = ids.Select(i => tokenizer.Pieces[i]), text = input });
            else
            {
                if (p.GetValue(chat) is not null) output.WriteLine(input);
                foreach (var id in ids) output.WriteLine($"{id,7} -> '{tokenizer.PieceText(id)}'");
                p.InvocationConfiguration.Error.WriteLine($"[{ids.Count} tokens, {tokenizer.Format}, vocabulary {tokenizer.VocabSize}]");
            }
            return 0;
        });
        return cmd;
    }

    static string ReadText(string path) =>
        File.Exists(path) ? File.ReadAllText(path) : throw SioException.InFile(path, "file not found");

    static (JsonArray Messages, JsonArray? Tools) ReadChat(string path)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(ReadText(path)); }
        catch (System.Text.Json.JsonException e) { throw SioException.InFile(path, $"not valid JSON ({e.Message})"); }
        return root switch
        {
            JsonArray a => (a, null),
            JsonObject o when o["messages"] is JsonArray m => (m, o["tools"] as JsonArray),
            _ => throw SioException.InFile(path, "expected a list of messages or an object with \"messages\" (and optional \"tools\")"),
        };
    }
}
