using System.Diagnostics;
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
        await page.ScreenshotAsync(new() { Path = Path.Combine(shots, "models.png"), FullPage = true });

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
        await page.GetByLabel("Concurrency levels").FillAsync("1,2");
        await page.GetByLabel("Requests per level").FillAsync("4");
        await page.GetByLabel("New tokens per request").FillAsync("24");
        await Expect(page.Locator("#opt-recipe")).ToHaveTextAsync("awq-int4:g32,speculative:ngram");
        await Expect(page.Locator("#opt-submit")).ToBeEnabledAsync();
        await page.ScreenshotAsync(new() { Path = Path.Combine(shots, "optimize.png"), FullPage = true });
        await page.GetByRole(AriaRole.Button, new() { Name = "Start optimization" }).ClickAsync();

        // Runs: live status until it completes.
        await Expect(page).ToHaveURLAsync(root + "#runs");
        var row = page.Locator("#runs-table tbody tr").First;
        await Expect(row).ToContainTextAsync("awq-int4:g32,speculative:ngram");
        await Expect(row.Locator("td").Nth(3)).ToHaveTextAsync("Completed", new() { Timeout = 240_000 });
        await page.ScreenshotAsync(new() { Path = Path.Combine(shots, "runs.png"), FullPage = true });

        // Results: charts with one line per variant, the table, the presets.
        await row.GetByRole(AriaRole.Link, new() { Name = "Results" }).ClickAsync();
        await Expect(page.Locator("#chart-throughput polyline.series")).ToHaveCountAsync(3);
        await Expect(page.Locator("#chart-itl polyline.series")).ToHaveCountAsync(3);
        await Expect(page.Locator("#variants-table tbody tr")).ToHaveCountAsync(3);
        await Expect(page.Locator("#presets .preset")).ToHaveCountAsync(3);
        await page.ScreenshotAsync(new() { Path = Path.Combine(shots, "results.png"), FullPage = true });
        await page.SetViewportSizeAsync(390, 844); // a phone
        Assert.True(await page.EvaluateAsync<bool>("document.documentElement.scrollWidth <= window.innerWidth + 1"), "the results view scrolls sideways at phone width");
        await page.ScreenshotAsync(new() { Path = Path.Combine(shots, "results-phone.png"), FullPage = true });
        await page.SetViewportSizeAsync(1280, 900);

        // Deploy the stacked variant in one click.
        await page.GetByRole(AriaRole.Button, new() { Name = "Deploy awq-int4:g32+speculative:ngram" }).ClickAsync();
        await Expect(page).ToHaveURLAsync(root + "#deployments");
        await Expect(page.Locator("#deployment-current")).ToContainTextAsync("awq-int4:g32+speculative:ngram");
        await Expect(page.Locator("#deployment-current")).ToContainTextAsync("drafter ngram");
        await page.ScreenshotAsync(new() { Path = Path.Combine(shots, "deployments.png"), FullPage = true });

        // Playground: a streamed answer with tokens/s and acceptance.
        await page.GetByRole(AriaRole.Link, new() { Name = "Playground" }).ClickAsync();
        await Expect(page.Locator("#play-send")).ToBeEnabledAsync(new() { Timeout = 60_000 });
        await page.GetByLabel("Prompt", new() { Exact = true }).FillAsync("Once upon a time, there was a little girl named Lily. She loved to play outside.");
        await page.GetByLabel("Most new tokens").FillAsync("60");
        await page.GetByRole(AriaRole.Button, new() { Name = "Send" }).ClickAsync();
        await Expect(page.Locator("#play-stats[data-done=true]")).ToHaveCountAsync(1, new() { Timeout = 60_000 });
        Assert.False(string.IsNullOrWhiteSpace(await page.Locator("#play-output").TextContentAsync()));
        var stats = await page.Locator("#play-stats").TextContentAsync();
        Assert.Matches(@"tokens/s: \d+(\.\d)?", stats);
        Assert.Matches(@"acceptance: \d+(\.\d)? %", stats);
        await page.ScreenshotAsync(new() { Path = Path.Combine(shots, "playground.png"), FullPage = true });
        Assert.Empty(errors);
        try { Directory.Delete(profile, true); } catch (IOException) { }
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
