using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Sio.Artifacts;
using Sio.Models;
using Sio.Pipeline;
using Sio.Tokenization;

namespace Sio.Tests;

/// <summary>
/// The attacks of the security review, replayed against real `sio up` / `sio serve` processes and servers on loopback:
/// each test fails on the build the review attacked.
/// </summary>
[Collection("stories260K")]
[Trait("Category", "e2e")]
public class SecurityTests(Stories260KFixture stories)
{
    static HttpClient H2c(int port) => new(new SocketsHttpHandler())
    {
        BaseAddress = new Uri($"http://127.0.0.1:{port}/"), DefaultRequestVersion = HttpVersion.Version20,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact, Timeout = TimeSpan.FromSeconds(10),
    };

    static HttpClient Http1(int port) => new() { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(10) };

    /// <summary>Sends a request over a client and returns its status, or null when the port would not talk that protocol.</summary>
    static async Task<HttpStatusCode?> TryStatus(HttpClient client, HttpMethod method, string path, HttpContent? body = null, string? contentType = null)
    {
        try
        {
            var request = new HttpRequestMessage(method, path) { Content = body };
            if (contentType is not null && body is not null) body.Headers.ContentType = new(contentType);
            return (await client.SendAsync(request)).StatusCode;
        }
        catch (HttpRequestException) { return null; }
    }

    [Fact] // items 1 and 10: the gRPC sidecar was a second, key-free door to every route
    public async Task UpWithAKeyOpensNoDoorWithoutItOnAnyPort()
    {
        var root = TestPaths.TempDir("sec-up");
        var keyFile = Path.Combine(root, "key");
        File.WriteAllText(keyFile, "k3y\n");
        int port = AzuriteFixture.FreePort();
        using var sio = new SioProcess(["up", "--port", port.ToString(), "--store", Path.Combine(root, "store"), "--work-dir", Path.Combine(root, "work")],
            new Dictionary<string, string> { ["SIO_API_KEY_FILE"] = keyFile, ["SIO_HOME"] = root });
        await sio.WaitReadyAsync(new Uri($"http://127.0.0.1:{port}/"));

        var sockets = sio.ListeningSockets();
        Assert.All(sockets, s => Assert.True(IPAddress.IsLoopback(s.Address), $"listens on {s}"));
        Assert.Equal(2, sockets.Select(s => s.Port).Distinct().Count()); // the API and the Durable Task sidecar
        foreach (var p in sockets.Select(s => s.Port).Distinct())
            foreach (var client in new[] { H2c(p), Http1(p) })
                using (client)
                {
                    var upload = await TryStatus(client, HttpMethod.Put, "api/uploads/x.jsonl", new StringContent("{\"text\": \"hi\"}\n"));
                    var swap = await TryStatus(client, HttpMethod.Post, "api/deployments", new StringContent("{\"model\": \"/tmp\"}"), "application/json");
                    var list = await TryStatus(client, HttpMethod.Get, "api/optimizations");
                    var grpc = await TryStatus(client, HttpMethod.Post, "TaskHubSidecarService/GetInstance", new ByteArrayContent([0, 0, 0, 0, 0]), "application/grpc");
                    foreach (var (what, answer) in new[] { ("upload", upload), ("hot swap", swap), ("list", list), ("sidecar gRPC", grpc) })
                        Assert.False(answer is { } s && (int)s < 300, $"port {p} ({client.DefaultRequestVersion}): {what} answered {answer} without the key");
                }

        using var http = Http1(port);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("healthz")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("")).StatusCode); // the console page loads, then asks for the key
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("v1/models")).StatusCode);
        http.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", "Bearer wrong");
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("api/optimizations")).StatusCode);
        http.DefaultRequestHeaders.Remove("Authorization");
        http.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", "bearer k3y"); // the scheme in any case
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("api/optimizations")).StatusCode);
        // the worker and client still reach the sidecar: a run is scheduled, executed and fails in its first step
        var post = await http.PostAsJsonAsync("api/optimizations", new { model = "uploads/none.bin", dataset = "uploads/none.jsonl", recipe = "rtn-int4" });
        Assert.Equal(HttpStatusCode.Accepted, post.StatusCode);
        var id = JsonNode.Parse(await post.Content.ReadAsStringAsync())!["id"]!.GetValue<string>();
        var status = await UpServer.WaitAsync(http, id, TimeSpan.FromSeconds(60));
        Assert.Equal("validate", status["failedStep"]?.GetValue<string>());
    }

    [Fact] // item 2: --host '[::1]' bound every interface
    public async Task ServeOnBracketedIpv6LoopbackBindsOnlyThatAddress()
    {
        int port = AzuriteFixture.FreePort();
        using var sio = new SioProcess(["serve", stories.ModelDir, "--host", "[::1]", "--port", port.ToString()]);
        await sio.WaitReadyAsync(new Uri($"http://[::1]:{port}/"));
        Assert.Equal([IPAddress.IPv6Loopback], sio.ListeningSockets().Select(s => s.Address).Distinct());
        using var v4 = Http1(port);
        await Assert.ThrowsAsync<HttpRequestException>(() => v4.GetAsync("v1/models"));
        Assert.Contains($"http://[::1]:{port}", sio.Output);
    }

    [Theory] // items 2 and 6: one parser; anything not provably loopback needs a key; names are refused clearly
    [InlineData("serve", "::ffff:127.0.0.1", null, "IPv4-mapped")]
    [InlineData("serve", "0.0.0.0", null, "SIO_API_KEY")]
    [InlineData("serve", "[::]", null, "SIO_API_KEY")]
    [InlineData("up", "foo.example", "k", "not an IP address")]
    [InlineData("up", "127.1", "k", "not an IP address")]
    public void HostsAreParsedOnceAndRefusedByName(string command, string host, string? key, string expected)
    {
        string[] args = command == "serve" ? ["serve", stories.ModelDir, "--host", host, "--port", "1"] : ["up", "--host", host, "--port", "1"];
        if (key is not null) args = [.. args, "--api-key", key];
        var (exit, _, err) = CliTests.Sio(args);
        Assert.Equal(1, exit);
        Assert.StartsWith("error: --host", err);
        Assert.Contains(expected, err);
        Assert.DoesNotContain("   at ", err);
    }

    [Fact] // item 4: an output folder that contained its input deleted it
    public void AnOutputThatContainsOrLiesInsideAnInputIsRefusedAndNothingIsLost()
    {
        var dir = TestPaths.TempDir("nest");
        var nest = Path.Combine(dir, "nest");
        Assert.Equal(0, CliTests.Sio("import", TestPaths.Stories260K, "--out", nest).Exit);
        Directory.CreateDirectory(Path.Combine(nest, "src"));
        var source = Path.Combine(nest, "src", "stories260K.bin");
        File.Copy(TestPaths.Stories260K, source);
        File.Copy(TestPaths.Tok512, Path.Combine(nest, "src", "tok512.bin"));
        var (exit, _, err) = CliTests.Sio("import", source, "--out", nest);
        Assert.Equal(1, exit);
        Assert.Contains("would replace its own input", err);
        Assert.True(File.Exists(source));

        var inner = Path.Combine(dir, "nest2", "inner");
        Assert.Equal(0, CliTests.Sio("import", TestPaths.Stories260K, "--out", inner).Exit);
        (exit, _, err) = CliTests.Sio("quantize", inner, "--method", "rtn", "--out", Path.Combine(dir, "nest2"));
        Assert.Equal(1, exit);
        Assert.True(File.Exists(Path.Combine(inner, ModelManifest.FileName)));
        (exit, _, err) = CliTests.Sio("quantize", inner, "--method", "rtn", "--out", Path.Combine(inner, "q"));
        Assert.Equal(1, exit);
        Assert.Contains("lies inside the input", err);
    }

    [Fact] // item 5: bodies are bounded, and a prompt longer than the context can hold is refused before it is tokenized
    public async Task PromptsAndBodiesAreBounded()
    {
        await using var s = new ServerFixture(stories.ModelDir);
        var huge = new ByteArrayContent(new byte[5 << 20]);
        huge.Headers.ContentType = new("application/json");
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, (await s.Http.PostAsync("/v1/completions", huge)).StatusCode);

        var prompt = string.Concat(Enumerable.Repeat("Once upon a time ", 2000)); // 34 KB, over 512 tokens × the longest piece
        var r = await s.Http.PostAsJsonAsync("/v1/completions", new { prompt, max_tokens = 4 });
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        var e = JsonNode.Parse(await r.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal("prompt", e["param"]!.GetValue<string>());
        Assert.Contains("characters", e["message"]!.GetValue<string>());
    }

    [Fact] // item 5: merging is no longer quadratic, and gives exactly what merging the leftmost best pair gives
    public void BpeMergingEqualsTheReferenceAndScalesToLargeTexts()
    {
        var tok = SentencePieceBpeTokenizer.FromLlama2c(TestPaths.Tok512, 512);
        var texts = Evaluation.DatasetReader.Read(TestPaths.TinyStoriesDev, 40).Records.Select(x => x.Text ?? x.Prompt!)
            .Concat(["", " ", "  leading and trailing  ", "Lily's dog — 🐶 naïve café 東京\n\n\tend", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]);
        foreach (var text in texts) Assert.Equal(ReferenceEncode(tok, text), tok.Encode(text));

        // 1.7 MB: the quadratic merge took about 10 s for 34 KB, so this would not finish in a test run
        var large = string.Concat(Enumerable.Repeat("Once upon a time, there was a little girl named Lily. ", 32_000));
        var ids = tok.Encode(large, addBos: false);
        Assert.Equal(large, tok.Decode(ids, tok.BosTokenId));
    }

    /// <summary>The pre-fix algorithm, kept as the reference: merge the leftmost best-scored adjacent pair until none merges.</summary>
    static List<int> ReferenceEncode(SentencePieceBpeTokenizer tok, string text)
    {
        var ids = new Dictionary<string, int>();
        for (int i = 0; i < tok.Pieces.Count; i++) ids.TryAdd(tok.Pieces[i], i);
        var symbols = new List<int> { tok.BosTokenId };
        if (text.Length == 0) return symbols;
        symbols.Clear();
        symbols.Add(ids[" "]);
        for (int i = 0; i < text.Length; i += char.IsSurrogatePair(text, i) ? 2 : 1)
        {
            var ch = text.Substring(i, char.IsSurrogatePair(text, i) ? 2 : 1);
            if (ids.TryGetValue(ch, out var id)) { symbols.Add(id); continue; }
            foreach (var b in Encoding.UTF8.GetBytes(ch)) symbols.Add(ids[$"<0x{b:X2}>"]);
        }
        while (true)
        {
            int at = -1, best = -1;
            float bestScore = float.MinValue;
            for (int i = 0; i + 1 < symbols.Count; i++)
                if (ids.TryGetValue(tok.Pieces[symbols[i]] + tok.Pieces[symbols[i + 1]], out var m) && tok.Scores![m] > bestScore) { bestScore = tok.Scores[m]; at = i; best = m; }
            if (at < 0) break;
            symbols[at] = best;
            symbols.RemoveAt(at + 1);
        }
        return [tok.BosTokenId, .. symbols];
    }

    [Theory] // item 6: each of these printed a stack trace and exited 134
    [InlineData("\"hidden_size\": \"64\"", "\"hidden_size\" must be an integer")]
    [InlineData("\"hidden_size\": 64.5", "\"hidden_size\" must be an integer")]
    [InlineData("\"hidden_size\": 1e12", "\"hidden_size\" must be an integer")]
    [InlineData("\"rope_theta\": \"abc\"", "\"rope_theta\" must be a positive number")]
    [InlineData("\"tie_word_embeddings\": \"yes\"", "\"tie_word_embeddings\" must be true or false")]
    [InlineData("\"architectures\": \"LlamaForCausalLM\"", "\"architectures\" must be a list of strings")]
    [InlineData("\"eos_token_id\": [null]", "\"eos_token_id\" must be a token id")]
    public void ConfigFieldsOfTheWrongTypeAreNamed(string field, string expected)
    {
        var dir = TestPaths.TempDir("badcfg");
        var hf = Path.Combine(dir, "hf");
        using (var ckpt = new Llama2cCheckpoint(TestPaths.Stories260K)) HuggingFaceExporter.Export(ckpt, hf);
        var path = Path.Combine(hf, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        var (key, value) = (field.Split(':', 2)[0].Trim('"', ' '), JsonNode.Parse(field.Split(':', 2)[1]));
        config[key] = value;
        File.WriteAllText(path, config.ToJsonString());
        var (exit, _, err) = CliTests.Sio("import", hf, "--out", Path.Combine(dir, "m"));
        Assert.Equal(1, exit);
        Assert.StartsWith($"error: {path}: {expected}", err);
        Assert.False(Directory.Exists(Path.Combine(dir, "m")));
    }

    [Fact] // item 6: more of the same, from files and paths
    public void BadFilesAndPathsGetAnErrorLineNotAStackTrace()
    {
        var dir = TestPaths.TempDir("badfiles");
        var hf = Path.Combine(dir, "hf");
        using (var ckpt = new Llama2cCheckpoint(TestPaths.Stories260K)) HuggingFaceExporter.Export(ckpt, hf, shards: 2);
        File.WriteAllText(Path.Combine(hf, "model.safetensors.index.json"), "{\"weight_map\": [\"model-00001-of-00002.safetensors\"]}");
        var cases = new List<(string[] Args, string Expected)>
        {
            (["import", hf, "--out", Path.Combine(dir, "m1")], "\"weight_map\" must be an object"),
        };
        var bin = Path.Combine(dir, "min.bin");
        var bytes = File.ReadAllBytes(TestPaths.Stories260K);
        BitConverter.GetBytes(int.MinValue).CopyTo(bytes, 20); // vocab_size
        File.WriteAllBytes(bin, bytes);
        cases.Add((["import", bin, "--tokenizer", TestPaths.Tok512, "--out", Path.Combine(dir, "m2")], "not a llama2.c checkpoint"));
        var afile = Path.Combine(dir, "afile");
        File.WriteAllText(afile, "x");
        cases.Add((["import", TestPaths.Stories260K, "--out", Path.Combine(afile, "sub")], "is a file"));
        cases.Add((["import", TestPaths.Stories260K, "--out", "/proc/sio-cannot-write/m"], "/proc/sio-cannot-write"));
        cases.Add((["quantize", stories.ModelDir, "--method", "rtn", "--out", "/proc/sio-cannot-write/q"], "/proc/sio-cannot-write"));
        foreach (var (args, expected) in cases)
        {
            var (exit, _, err) = CliTests.Sio(args);
            Assert.True(exit == 1, $"{string.Join(' ', args)}: exit {exit}: {err}");
            Assert.StartsWith("error: ", err);
            Assert.Contains(expected, err);
            Assert.DoesNotContain("   at ", err);
        }
    }

    [Fact] // item 7: uploads are checked whole, stored only when accepted, answered without server paths
    public async Task UploadsAreValidatedBeforeTheyAreStored()
    {
        await using var up = new UpServer(c => c with { AllowLocalPaths = false });
        var random = new byte[4096];
        new Random(7).NextBytes(random);
        var junk = await up.Http.PutAsync("api/uploads/data.jsonl", new ByteArrayContent(random));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, junk.StatusCode);
        var half = await up.Http.PutAsync("api/uploads/tokenizer.json", new StringContent("{\"a\":"));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, half.StatusCode);
        foreach (var answer in new[] { junk, half })
        {
            var detail = await answer.Content.ReadAsStringAsync();
            Assert.DoesNotContain(up.Root, detail);
            Assert.DoesNotContain("/tmp/", detail);
        }
        var longName = await up.Http.PutAsync($"api/uploads/{new string('a', 300)}.jsonl", new StringContent("{\"text\": \"hi\"}\n"));
        Assert.Equal(HttpStatusCode.BadRequest, longName.StatusCode);
        Assert.Empty(JsonNode.Parse(await up.Http.GetStringAsync("api/uploads"))!["uploads"]!.AsArray());

        var unicode = await up.Http.PutAsync("api/uploads/%C3%BC%F0%9F%90%89.jsonl", new StringContent("{\"text\": \"hi\"}\n"));
        Assert.Equal(HttpStatusCode.Created, unicode.StatusCode);
        Assert.Equal("/api/uploads/%C3%BC%F0%9F%90%89.jsonl", unicode.Headers.Location!.OriginalString);
        Assert.Equal(["ü🐉.jsonl"], JsonNode.Parse(await up.Http.GetStringAsync("api/uploads"))!["uploads"]!.AsArray().Select(u => u!["name"]!.GetValue<string>()));
    }

    [Fact] // item 8: a model reference over HTTP read any local file's first bytes
    public async Task OverHttpModelsAreStoreReferencesUnlessTheOperatorOptsIn()
    {
        await using var up = new UpServer(c => c with { AllowLocalPaths = false });
        var passwd = await up.Http.PostAsJsonAsync("api/models", new { model = "/etc/passwd" });
        var missing = await up.Http.PostAsJsonAsync("api/models", new { model = "/etc/no-such-file" });
        Assert.Equal(HttpStatusCode.BadRequest, passwd.StatusCode);
        var detail = JsonNode.Parse(await passwd.Content.ReadAsStringAsync())!["detail"]!.GetValue<string>();
        Assert.Contains("uploads/NAME", detail);
        Assert.DoesNotContain("header", detail);
        // the answer does not tell an existing path from a missing one
        Assert.Equal(detail.Replace("/etc/passwd", "X"), JsonNode.Parse(await missing.Content.ReadAsStringAsync())!["detail"]!.GetValue<string>().Replace("/etc/no-such-file", "X"));

        await using var s = new ServerFixture(stories.ModelDir);
        var swap = await s.Http.PostAsJsonAsync("/api/deployments", new { model = stories.ModelDir });
        Assert.Equal(HttpStatusCode.Forbidden, swap.StatusCode);
        Assert.Contains("--allow-local-paths", await swap.Content.ReadAsStringAsync());
    }

    [Fact] // item 9: a kill between the two renames left the model aside; temporary folders stayed forever
    public void ARerunRecoversWhatACrashedWriteLeft()
    {
        var dir = TestPaths.TempDir("crash");
        var model = Path.Combine(dir, "m");
        Assert.Equal(0, CliTests.Sio("import", TestPaths.Stories260K, "--out", model).Exit);
        // the state a kill -9 between the renames leaves: the destination moved aside, a half-built temporary beside it
        Directory.Move(model, Path.Combine(dir, ".m.old-0123"));
        Directory.CreateDirectory(Path.Combine(dir, ".m.tmp-4567"));
        File.WriteAllText(Path.Combine(dir, ".m.tmp-4567", "model.onnx.data"), "half");
        Directory.CreateDirectory(Path.Combine(dir, "m.old-89ab")); // what sio before this fix left behind

        using (var output = OutputFolder.Begin(model, [])) { } // a run that is opened and then fails
        Assert.True(File.Exists(Path.Combine(model, ModelManifest.FileName)), "the previous model is restored");
        Assert.Equal(["m"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));

        Directory.CreateDirectory(Path.Combine(dir, ".m.tmp-cdef"));
        Assert.Equal(0, CliTests.Sio("import", TestPaths.Stories260K, "--out", model).Exit);
        Assert.Equal(["m"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
    }

    [Fact] // item 10: messages name the field, not .NET types; 4xx are counted; options and data are checked
    public async Task ErrorsSpeakTheDomainsWordsAndAreCounted()
    {
        await using var s = new ServerFixture(stories.ModelDir);
        var r = await s.Http.PostAsJsonAsync("/v1/completions", new { prompt = "Once", max_tokens = "5" });
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        var e = JsonNode.Parse(await r.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal("max_tokens", e["param"]!.GetValue<string>());
        Assert.DoesNotContain("System.", e["message"]!.GetValue<string>());
        var metrics = await s.Http.GetStringAsync("/metrics");
        Assert.Matches("sio_http_responses_total\\{[^}]*class=\"4xx\",code=\"400\"", metrics);

        var (exit, _, err) = CliTests.Sio("up", "--max-upload-mb", "-1");
        Assert.Equal(1, exit);
        Assert.Contains("--max-upload-mb must be from 1", err);
        (exit, _, err) = CliTests.Sio("generate");
        Assert.Equal(1, exit);
        Assert.StartsWith("error: ", err);
        Assert.DoesNotContain("Usage:", err);

        var dir = TestPaths.TempDir("latin1");
        var data = Path.Combine(dir, "data.jsonl");
        File.WriteAllBytes(data, [.. Encoding.UTF8.GetBytes("{\"text\": \"fine\"}\n{\"text\": \"caf"), 0xE9, .. Encoding.UTF8.GetBytes("\"}\n")]);
        (exit, _, err) = CliTests.Sio("eval", stories.ModelDir, "--dataset", data);
        Assert.Equal(1, exit);
        Assert.Contains("line 2 is not valid UTF-8", err);
    }
}

/// <summary>Item 3: two identical optimization requests at once start exactly one run, on every backend.</summary>
[Collection("azurite")]
[Trait("Category", "e2e")]
public class AtomicStartTests(AzuriteFixture azurite)
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task IdenticalRequestsAtOnceStartOneRunThatCanBeCancelled(bool azureStorage)
    {
        await using var up = new UpServer(c => azureStorage
            ? c with { TaskHubConnection = azurite.ConnectionString, TaskHubName = "dup" + Guid.NewGuid().ToString("N")[..8], RecoveryTimeout = TimeSpan.FromSeconds(10) }
            : c);
        Assert.Equal(HttpStatusCode.Created, (await up.Upload("dup/stories260K.zip", UpServer.StoriesZip())).StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await up.Upload("dup/data.jsonl", TestPaths.TinyStoriesDev)).StatusCode);
        var body = new { model = "uploads/dup/stories260K.zip", dataset = "uploads/dup/data.jsonl", recipe = "awq-int4", benchmark = new { concurrency = new[] { 1 }, requests = 40, maxNewTokens = 200 } };
        var answers = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => up.Http.PostAsJsonAsync("api/optimizations", body)));
        var parsed = await Task.WhenAll(answers.Select(async a => JsonNode.Parse(await a.Content.ReadAsStringAsync())!));
        Assert.All(answers, a => Assert.Equal(HttpStatusCode.Accepted, a.StatusCode));
        Assert.Single(parsed, p => !p["duplicate"]!.GetValue<bool>());
        var id = Assert.Single(parsed.Select(p => p["id"]!.GetValue<string>()).Distinct());

        Assert.Equal(HttpStatusCode.Accepted, (await up.Http.DeleteAsync($"api/optimizations/{id}")).StatusCode);
        var end = await up.WaitAsync(id, TimeSpan.FromMinutes(2));
        Assert.Equal("Terminated", end["runtimeStatus"]!.GetValue<string>());
    }
}
