using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Sio.Tests;

/// <summary>
/// The web console end to end in a real browser (Debian's chromium, headless, driven by Playwright) against `sio up` on
/// 127.0.0.1: upload stories260K, optimize with AWQ and prompt lookup, watch the run, see the charts, deploy, stream an
/// answer. A screenshot of each main view goes to TestResults/console/.
/// </summary>
[Trait("Category", "e2e")]
public class ConsoleTests
{
    const string Chromium = "/usr/bin/chromium";

    static void EnsureChromium()
    {
        if (File.Exists(Chromium)) return;
        foreach (var args in new[] { "install -y -qq chromium", "update -qq", "install -y -qq chromium" })
        {
            using var p = Process.Start(new ProcessStartInfo("apt-get", args) { Environment = { ["DEBIAN_FRONTEND"] = "noninteractive" }, RedirectStandardOutput = true, RedirectStandardError = true })!;
            p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            if (File.Exists(Chromium)) return;
        }
        throw new InvalidOperationException($"{Chromium} is missing and apt-get could not install the chromium package");
    }

    static Task<IBrowserContext> Launch(IPlaywright playwright, string profile) => playwright.Chromium.LaunchPersistentContextAsync(profile, new()
    {
        ExecutablePath = Chromium, Headless = true, ViewportSize = new() { Width = 1280, Height = 900 },
        Args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });

    [Fact]
    public async Task UploadOptimizeWatchCompareDeployAndStream()
    {
        EnsureChromium();
        var shots = Path.Combine(TestPaths.RepoRoot, "TestResults", "console");
        Directory.CreateDirectory(shots);
        await using var up = new UpServer();
        using var playwright = await Playwright.CreateAsync();
        var profile = TestPaths.TempDir("chromium-profile");
        await using var browser = await Launch(playwright, profile);
        var page = browser.Pages.Count > 0 ? browser.Pages[0] : await browser.NewPageAsync();
        var errors = new List<string>();
        page.PageError += (_, e) => errors.Add(e);
        var root = up.Http.BaseAddress!.ToString();
        await page.GotoAsync(root + "#models");

        // Every form control has a label.
        Assert.Equal(0, await page.EvaluateAsync<int>("[...document.querySelectorAll('input,select,textarea')].filter(e => e.labels.length === 0 && !e.getAttribute('aria-label')).length"));

        // Models: upload the model (a zip) and a dataset, with the progress bar.
        async Task Upload(string file, string name)
        {
            await page.GetByLabel("File", new() { Exact = true }).SetInputFilesAsync(file);
            await page.GetByLabel("Name in the uploads container").FillAsync(name);
            await page.GetByRole(AriaRole.Button, new() { Name = "Upload", Exact = true }).ClickAsync();
            await Expect(page.Locator("#upload-status")).ToContainTextAsync("Uploaded");
            Assert.Equal("100", await page.Locator("#upload-progress").EvaluateAsync<string>("e => String(e.value)"));
        }
        await Upload(UpServer.StoriesZip(), "stories/stories260K.zip");
        await Upload(TestPaths.TinyStoriesDev, "data/tinystories.jsonl");
        await Expect(page.Locator("#uploads-table")).ToContainTextAsync("stories/stories260K.zip");
        // A model with another vocabulary (aidreams260K, 512 other tokens), imported beside stories260K to be offered as a draft.
        var aidreams = Path.Combine(TestPaths.TempDir("aidreams"), "aidreams260K.zip");
        using (var z = System.IO.Compression.ZipFile.Open(aidreams, System.IO.Compression.ZipArchiveMode.Create))
        {
            System.IO.Compression.ZipFileExtensions.CreateEntryFromFile(z, TestPaths.AiDreams, "aidreams260K.bin");
            System.IO.Compression.ZipFileExtensions.CreateEntryFromFile(z, Path.Combine(Path.GetDirectoryName(TestPaths.AiDreams)!, "tok512.bin"), "tok512.bin");
        }
        await Upload(aidreams, "drafts/aidreams260K.zip");
        foreach (var name in new[] { "stories/stories260K.zip", "drafts/aidreams260K.zip" })
            await page.Locator("#uploads-table tr", new() { HasText = name }).GetByRole(AriaRole.Button, new() { Name = "Import" }).ClickAsync();
        await Expect(page.Locator("#models-table tbody tr")).ToHaveCountAsync(2);

        // New optimization: AWQ + prompt lookup; an invalid combination is explained before submission.
        await page.GetByRole(AriaRole.Link, new() { Name = "New optimization" }).ClickAsync();
        await page.GetByLabel("Model", new() { Exact = true }).SelectOptionAsync("uploads/stories/stories260K.zip");
        await page.GetByLabel("Dataset (calibration, benchmark prompts, quality)").SelectOptionAsync("uploads/data/tinystories.jsonl");
        var draftOption = await page.Locator("#opt-draft option", new() { HasText = "aidreams260K" }).GetAttributeAsync("value");
        var storiesOption = await page.Locator("#opt-model option", new() { HasText = "imported: stories260K" }).GetAttributeAsync("value");
        await page.GetByLabel("Model", new() { Exact = true }).SelectOptionAsync(storiesOption!);
        await page.GetByLabel("Drafter").SelectOptionAsync("draft");
        await page.GetByLabel("Draft model").SelectOptionAsync(draftOption!);
        await Expect(page.Locator("#opt-errors")).ToContainTextAsync("vocabulary differs");
        await Expect(page.Locator("#opt-submit")).ToBeDisabledAsync();
        await page.GetByLabel("Model", new() { Exact = true }).SelectOptionAsync("uploads/stories/stories260K.zip");
        await page.GetByLabel("Drafter").SelectOptionAsync("self-int4");
        await Expect(page.Locator("#opt-errors")).ToContainTextAsync("already quantizes");
        await Expect(page.Locator("#opt-submit")).ToBeDisabledAsync();
        await page.GetByLabel("Drafter").SelectOptionAsync("ngram");
        await page.GetByLabel("Most perplexity increase (%)").FillAsync("50");
        await page.GetByLabel("Least speedup (x, concurrency 1)").FillAsync("0.05");
        await page.GetByLabel("Most mean KL divergence from the baseline (nats per token, empty for none)").FillAsync("5");
        await page.GetByLabel("Least same-top-token rate (0 to 1, empty for none)").FillAsync("0.3");
        await page.GetByLabel("Concurrency levels").FillAsync("1,2");
        await page.GetByLabel("Requests per level").FillAsync("4");
        await page.GetByLabel("New tokens per request").FillAsync("24");
        await Expect(page.Locator("#opt-recipe")).ToHaveTextAsync("awq-int4:g32,speculative:ngram");
        await Expect(page.Locator("#opt-submit")).ToBeEnabledAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Start optimization" }).ClickAsync();

        // Runs: live status until it completes, with its start time and duration.
        await Expect(page).ToHaveURLAsync(root + "#runs");
        var row = page.Locator("#runs-table tbody tr").First;
        await Expect(row).ToContainTextAsync("awq-int4:g32,speculative:ngram");
        await Expect(row.Locator("td").Nth(3)).ToHaveTextAsync("Completed", new() { Timeout = 240_000 });
        Assert.Matches(@"\d{4}", await row.Locator("td").Nth(4).TextContentAsync()); // the start, a date with its year
        Assert.Matches(@"^\d+(\.\d)? s$|^\d+ min \d\d s$", await row.Locator("td").Nth(5).TextContentAsync());
        var runId = await row.GetAttributeAsync("data-run");

        // One run: every step with its duration, and the event log.
        await row.GetByRole(AriaRole.Link, new() { Name = $"Details of run {runId}" }).ClickAsync();
        await Expect(page).ToHaveURLAsync(root + $"#run/{runId}");
        foreach (var step in new[] { "validate", "import", "quantize", "benchmark", "gate", "publish", "deploy" })
            await Expect(page.Locator($"#run-steps tr[data-step={step}] td").Nth(3)).ToHaveTextAsync(new System.Text.RegularExpressions.Regex(@"^\d+(\.\d)? s$|^\d+ min \d\d s$"));
        await Expect(page.Locator("#run-steps tbody tr")).ToHaveCountAsync(7);
        var events = page.Locator("#run-events li");
        await Expect(events.First).ToContainTextAsync("validate started");
        await Expect(events.Filter(new() { HasText = "measured baseline:" })).ToHaveCountAsync(1);
        await Expect(events.Filter(new() { HasText = "gate: awq-int4:g32+speculative:ngram" })).ToHaveCountAsync(1);
        await Expect(events.Last).ToContainTextAsync(new System.Text.RegularExpressions.Regex("^\\d\\d:\\d\\d:\\d\\d chose \\S+ and deployed it$"));
        var chosen = System.Text.RegularExpressions.Regex.Match((await events.Last.TextContentAsync())!, "chose (\\S+) and").Groups[1].Value; // the run deployed it
        await Expect(page.Locator("#run-summary")).ToContainTextAsync("Completed");
        await Views(page, shots, "run");

        // Results: charts with one line per variant, the table, the presets (each naming its variant).
        await page.Locator("#run-links").GetByRole(AriaRole.Link, new() { Name = "Results" }).ClickAsync();
        await Expect(page.Locator("#chart-throughput polyline.series")).ToHaveCountAsync(3);
        await Expect(page.Locator("#chart-itl polyline.series")).ToHaveCountAsync(3);
        await Expect(page.Locator("#variants-table tbody tr")).ToHaveCountAsync(3);
        await Expect(page.Locator("#presets .preset")).ToHaveCountAsync(3);
        var awqRow = page.Locator("#variants-table tbody tr").Nth(1); // the int4 variant against the baseline's distributions
        await Expect(awqRow.Locator("td").Nth(3)).ToHaveTextAsync(new System.Text.RegularExpressions.Regex(@"^[\d.e-]+ \([\d.e-]+\) · \d+\.\d %$"));
        await Views(page, shots, "results");

        // Deploy two variants, one click each; the deployments are cards, the live one marked; roll back to the first.
        await page.GetByRole(AriaRole.Button, new() { Name = "Deploy awq-int4:g32+speculative:ngram" }).ClickAsync();
        await Expect(page).ToHaveURLAsync(root + "#deployments");
        await Expect(page.Locator("#deployment-current")).ToContainTextAsync("awq-int4:g32+speculative:ngram");
        var stacked = page.GetByRole(AriaRole.Article, new() { Name = $"Deployment awq-int4:g32+speculative:ngram from run {runId}", Exact = true });
        await Expect(page.Locator("article.deployment")).ToHaveCountAsync(chosen == "awq-int4:g32+speculative:ngram" ? 1 : 2); // the run published its choice
        await Expect(stacked.Locator(".badge.live")).ToHaveTextAsync("live", new() { Timeout = 60_000 });
        await Expect(stacked.Locator(".techniques li")).ToHaveTextAsync(["awq-int4:g32", "speculative:ngram"]);
        await Expect(stacked).ToContainTextAsync("ngram");
        await Expect(stacked).ToContainTextAsync(new System.Text.RegularExpressions.Regex(@"Output tok/s\s*\d+\.\d at concurrency 1"));
        await Expect(stacked).ToContainTextAsync(new System.Text.RegularExpressions.Regex(@"Acceptance\s*\d+\.\d %"));
        await Expect(stacked.Locator("dd").Last).Not.ToHaveTextAsync("never");
        await page.GotoAsync(root + $"#results/{runId}");
        await page.GetByRole(AriaRole.Button, new() { Name = "Deploy awq-int4:g32", Exact = true }).ClickAsync();
        await Expect(page).ToHaveURLAsync(root + "#deployments");
        await Expect(page.Locator("#deployment-current")).ToContainTextAsync("Live: awq-int4:g32 from");
        await Expect(page.Locator("article.deployment")).ToHaveCountAsync(2); // the gate's choice is never published twice
        await Expect(page.Locator("article.deployment .badge.live")).ToHaveCountAsync(1);
        await Expect(stacked.Locator(".badge")).ToHaveCountAsync(0);
        await Views(page, shots, "deployments");
        await page.SetViewportSizeAsync(390, 844); // the roll back, reached and clicked at phone width
        await stacked.GetByRole(AriaRole.Button, new() { Name = $"Roll back to this: awq-int4:g32+speculative:ngram from run {runId}" }).ClickAsync();
        await Expect(stacked.Locator(".badge.live")).ToHaveTextAsync("live", new() { Timeout = 60_000 });
        await Expect(page.Locator("#deployment-current")).ToContainTextAsync("awq-int4:g32+speculative:ngram");
        await page.SetViewportSizeAsync(1280, 900);

        // Playground, completion: a streamed answer with tokens/s and acceptance.
        await page.GetByRole(AriaRole.Link, new() { Name = "Playground" }).ClickAsync();
        await Expect(page.Locator("#play-send")).ToBeEnabledAsync(new() { Timeout = 60_000 });
        await page.GetByLabel("Completion: the text is continued as it is").CheckAsync();
        await page.GetByLabel("Message", new() { Exact = true }).FillAsync("Once upon a time, there was a little girl named Lily. She loved to play outside.");
        await page.GetByLabel("Most new tokens").FillAsync("60");
        await page.GetByRole(AriaRole.Button, new() { Name = "Send" }).ClickAsync();
        await Expect(page.Locator("#play-stats[data-done=true]")).ToHaveCountAsync(1, new() { Timeout = 60_000 });
        Assert.False(string.IsNullOrWhiteSpace(await page.Locator(".msg.assistant .text").TextContentAsync()));
        var stats = await page.Locator("#play-stats").TextContentAsync();
        Assert.Matches(@"tokens/s: \d+(\.\d)?", stats);
        Assert.Matches(@"acceptance: \d+(\.\d)? %", stats);

        // Playground, chat: a system prompt and two turns, the second sent with the whole conversation.
        var sent = new List<string>();
        page.Request += (_, r) => { if (r.Url.EndsWith("/v1/chat/completions")) sent.Add(r.PostData ?? ""); };
        await page.GetByLabel("Chat: the conversation goes through the model's chat template").CheckAsync();
        await page.GetByLabel("System prompt").FillAsync("You tell short stories.");
        foreach (var (turn, text) in new[] { (1, "Tell me about Lily."), (2, "And her dog?") })
        {
            await page.GetByLabel("Message", new() { Exact = true }).FillAsync(text);
            await page.GetByRole(AriaRole.Button, new() { Name = "Send" }).ClickAsync();
            await Expect(page.Locator("#play-stats[data-done=true]")).ToHaveCountAsync(1, new() { Timeout = 60_000 });
            await Expect(page.Locator("#chat-log .msg")).ToHaveCountAsync(2 * turn);
        }
        await Expect(page.Locator("#chat-log .msg")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex[] { new("^user"), new("^assistant"), new("^user"), new("^assistant") });
        var second = JsonNode.Parse(sent[^1])!["messages"]!.AsArray();
        Assert.Equal(["system", "user", "assistant", "user"], second.Select(m => m!["role"]!.GetValue<string>()));
        Assert.Equal("You tell short stories.", second[0]!["content"]!.GetValue<string>());
        Assert.Equal("And her dog?", second[3]!["content"]!.GetValue<string>());
        Assert.Equal(await page.Locator("#chat-log .msg.assistant .text").First.TextContentAsync(), second[2]!["content"]!.GetValue<string>());
        await Views(page, shots, "playground");

        // Metrics: from the server's own /metrics, sampled since the console opened, so the requests above are in the window.
        File.WriteAllText("/tmp/metrics-debug.txt", await up.Http.GetStringAsync("metrics"));
        await page.GetByRole(AriaRole.Link, new() { Name = "Metrics" }).ClickAsync();
        await Expect(page.Locator("#metrics-tiles")).ToContainTextAsync("Output tok/s", new() { Timeout = 10_000 });
        var finished = page.Locator("#metrics-tiles div", new() { HasText = "Requests finished" }).Locator("dd");
        await Expect(finished).ToHaveTextAsync(new System.Text.RegularExpressions.Regex("^[3-9]$|^\\d\\d+$"), new() { Timeout = 10_000 });
        await Expect(page.Locator("#chart-m-throughput polyline.series")).ToHaveCountAsync(1);
        Assert.True(await page.Locator("#chart-m-throughput polyline.series").EvaluateAsync<int>("e => e.points.numberOfItems") >= 2);
        await Expect(page.Locator("#chart-m-requests polyline.series")).ToHaveCountAsync(2);
        await Views(page, shots, "metrics");

        // Recommend: an impossible objective is explained; then a small search, its ranked entries, the Pareto chart, and one deployed.
        await page.GetByRole(AriaRole.Link, new() { Name = "Recommend" }).ClickAsync();
        await page.GetByLabel("Model to search for").SelectOptionAsync(storiesOption!);
        await page.GetByLabel("Dataset (quality is measured on it").SelectOptionAsync("uploads/data/tinystories.jsonl");
        await page.GetByLabel("Answer tokens").FillAsync("16");
        await page.GetByLabel("Quantizations searched").FillAsync("none,rtn-int8");
        await page.GetByLabel("Speculation searched").FillAsync("none");
        await page.GetByLabel("Engines searched").FillAsync("onnx");
        await page.GetByLabel("Concurrency limits").FillAsync("1,2");
        await page.GetByLabel("Budget (e.g. 30m, 1h)").FillAsync("2m");
        await page.GetByLabel("Latency objectives at p99").FillAsync("ttft=2s,e2e=1s");
        await page.GetByRole(AriaRole.Button, new() { Name = "Start recommendation" }).ClickAsync();
        await Expect(page.Locator("#rec-errors")).ToContainTextAsync("slo: ttft 2000 ms is not below e2e 1000 ms");
        await page.GetByLabel("Latency objectives at p99").FillAsync("ttft=20s");
        await page.GetByRole(AriaRole.Button, new() { Name = "Start recommendation" }).ClickAsync();
        await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("#recommendation/rec-"));
        await Expect(page.Locator("#rec-summary")).ToContainTextAsync(new System.Text.RegularExpressions.Regex(@"^\d+ entr(y|ies) for throughput"), new() { Timeout = 180_000 });
        Assert.True(await page.Locator("#rec-ranked tbody tr").CountAsync() >= 1);
        await Expect(page.Locator("#rec-ranked tbody tr").First.Locator("td").Nth(4)).ToHaveTextAsync(new System.Text.RegularExpressions.Regex(@"^\d+\.\d ± \d+\.\d$"));
        Assert.True(await page.Locator("#chart-pareto polyline.series").CountAsync() >= 2); // a candidate's curve and the front
        await Expect(page.Locator("#rec-discarded li").First).ToBeVisibleAsync();
        await Views(page, shots, "recommendation");
        await page.GetByRole(AriaRole.Button, new() { Name = "Deploy entry 1" }).ClickAsync();
        await Expect(page).ToHaveURLAsync(root + "#deployments");
        await Expect(page.Locator("article.deployment .badge.live")).ToHaveCountAsync(1);
        await Expect(page.Locator("#deployment-current")).ToContainTextAsync("/c", new() { Timeout = 60_000 });

        // The other views at both widths.
        foreach (var view in new[] { "models", "optimize", "recommend", "runs" })
        {
            await page.GotoAsync(root + "#" + view);
            await Views(page, shots, view);
        }
        await page.SetViewportSizeAsync(390, 844); // at phone width a run's details are reached from the runs table (its last column)
        await page.GotoAsync(root + "#runs");
        await page.Locator("#runs-table").GetByRole(AriaRole.Link, new() { Name = $"Details of run {runId}" }).ClickAsync();
        await Expect(page).ToHaveURLAsync(root + $"#run/{runId}");
        Assert.Empty(errors);
        try { Directory.Delete(profile, true); } catch (IOException) { }
    }

    /// <summary>The current view at a laptop's width and a phone's: a screenshot of each, and at the phone's the page
    /// never scrolls sideways (wide tables scroll inside their own box).</summary>
    static async Task Views(IPage page, string shots, string name)
    {
        foreach (var (width, height, suffix) in new[] { (1280, 900, ""), (390, 844, "-phone") })
        {
            await page.SetViewportSizeAsync(width, height);
            await page.WaitForTimeoutAsync(100);
            Assert.True(await page.EvaluateAsync<bool>("document.documentElement.scrollWidth <= window.innerWidth + 1"), $"the {name} view scrolls sideways at {width} px");
            await page.ScreenshotAsync(new() { Path = Path.Combine(shots, $"{name}{suffix}.png"), FullPage = true });
        }
        await page.SetViewportSizeAsync(1280, 900);
    }

    [Fact] // security item 10: with a key set the console still loads, asks for the key, and then works
    public async Task WithAKeyTheConsoleAsksForItAndThenWorks()
    {
        EnsureChromium();
        await using var up = new UpServer(c => c with { ApiKey = "console-k3y" });
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await Launch(playwright, TestPaths.TempDir("chromium-key"));
        var page = browser.Pages.Count > 0 ? browser.Pages[0] : await browser.NewPageAsync();
        await page.GotoAsync(up.Http.BaseAddress + "#models");
        await Expect(page.Locator("#key-form")).ToBeVisibleAsync();
        await page.GetByLabel("API key", new() { Exact = true }).FillAsync("wrong");
        await page.GetByRole(AriaRole.Button, new() { Name = "Use key" }).ClickAsync();
        await Expect(page.Locator("#key-status")).ToContainTextAsync("refused");
        await page.GetByLabel("API key", new() { Exact = true }).FillAsync("console-k3y");
        await page.GetByRole(AriaRole.Button, new() { Name = "Use key" }).ClickAsync();
        await Expect(page.Locator("#key-form")).ToBeHiddenAsync();
        await page.GetByLabel("File", new() { Exact = true }).SetInputFilesAsync(TestPaths.TinyStoriesDev);
        await page.GetByLabel("Name in the uploads container").FillAsync("data/keyed.jsonl");
        await page.GetByRole(AriaRole.Button, new() { Name = "Upload", Exact = true }).ClickAsync();
        await Expect(page.Locator("#upload-status")).ToContainTextAsync("Uploaded");
        await Expect(page.Locator("#uploads-table")).ToContainTextAsync("data/keyed.jsonl");
        var shots = Path.Combine(TestPaths.RepoRoot, "TestResults", "console");
        Directory.CreateDirectory(shots);
        await page.ScreenshotAsync(new() { Path = Path.Combine(shots, "models-with-key.png"), FullPage = true });
    }
}
