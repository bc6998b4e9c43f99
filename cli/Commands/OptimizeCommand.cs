using System.CommandLine;
using System.Text.Json;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.DependencyInjection;
using Sio.Artifacts;
using Sio.Cli.Hosting;
using Sio.Pipeline;
using Sio.Speculative;

namespace Sio.Cli;

public static class OptimizeCommand
{
    public static Command Create()
    {
        var source = new Argument<string>("source") { Description = "A llama2.c .bin, a Hugging Face folder, a sio model folder, or a .zip of one." };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "A tokenizer file overriding the one beside the source." };
        var dataset = new Option<string>("--dataset") { Description = "Your data (JSONL or text): even records calibrate (AWQ, the datastore drafter), odd records measure (benchmark prompts, perplexity).", Required = true };
        var output = new Option<string>("--out") { Description = "Folder for report.json, report.md, and when a variant passed deployment.json, the chosen model (model/) and its drafter (datastore.jsonl or draft/).", Required = true };
        var json = new Option<bool>("--json") { Description = "Print status, report and deployment_manifest as JSON." };
        var shared = new PipelineOptionsCli();
        var cmd = new Command("optimize", "Run the optimization pipeline once, in-process: import → recipe (quantize, compile) → benchmark baseline and variants → quality and cost gate → report and deployment manifest. Exit 0 when a variant passed, 3 when none did.")
        {
            source, tokenizer, dataset, output, json,
        };
        foreach (var o in shared.All) cmd.Options.Add(o);
        cmd.SetAction(async (p, ct) =>
        {
            var request = shared.Request(p, p.GetValue(source)!, p.GetValue(tokenizer), p.GetValue(dataset)!);
            if (request.Problems() is { Count: > 0 } problems) throw new SioException(string.Join("; ", problems.SelectMany(x => x.Value)));
            using var folder = OutputFolder.Begin(p.GetValue(output)!, [request.Model, request.Tokenizer, request.Dataset], d =>
            {
                if (File.Exists(d) || (Directory.Exists(d) && Directory.EnumerateFileSystemEntries(d).Any() && !File.Exists(Path.Combine(d, "report.json"))))
                    throw SioException.InFile(d, "the output folder exists and is not a sio optimize result; choose another --out or empty it");
            });
            var outDir = folder.Destination;
            var err = p.InvocationConfiguration.Error;
            await using var app = PipelineHost.Build(new PipelineHostConfig { Api = false, AllowLocalPaths = true, Store = p.GetValue(shared.Store), WorkDir = p.GetValue(shared.WorkDir) });
            await app.StartAsync(ct);
            var api = app.Services.GetRequiredService<OptimizationApi>();
            var started = await api.StartAsync(request, "", ct: ct);
            if (started.Status != 202) throw new SioException(JsonSerializer.Serialize(started.Body));
            var id = request.InstanceId();
            var m = await RunFollower.FollowAsync(app.Services, id, "optimization", err, null, ct);
            if (m.RuntimeStatus != OrchestrationRuntimeStatus.Completed)
                throw new SioException($"optimization {id} {m.RuntimeStatus}: {m.FailureDetails?.ErrorMessage}");
            var result = m.ReadOutputAs<OptimizationResult>()!;
            var store = app.Services.GetRequiredService<IObjectStore>();
            var artifacts = app.Services.GetRequiredService<ArtifactRepository>();
            var temp = folder.Temp;
            string? serveDrafter = null;
            await store.DownloadAsync(Containers.Reports, $"{id}/report.json", Path.Combine(temp, "report.json"), ct);
            await store.DownloadAsync(Containers.Reports, $"{id}/report.md", Path.Combine(temp, "report.md"), ct);
            if (result.DeploymentManifest is { } dm)
            {
                var text = (await store.GetTextAsync(Containers.Deployments, dm[(Containers.Deployments.Length + 1)..], ct))!;
                await File.WriteAllTextAsync(Path.Combine(temp, "deployment.json"), text, ct);
                var manifest = DeploymentManifest.Parse(text)!;
                CopyFolder(await artifacts.MaterializeAsync(manifest.ModelKey), Path.Combine(temp, "model"));
                // The drafter travels with the model: a datastore file or a draft model folder beside it.
                var drafter = DrafterSpec.Parse(manifest.Drafter, "the deployment's drafter");
                serveDrafter = manifest.Drafter;
                if (drafter.Path is { } stored && ArtifactRepository.IsArtifactFile(stored))
                {
                    var local = DrafterSpec.Parse(await artifacts.LocalDrafterAsync(manifest.Drafter)).Path!;
                    var beside = drafter.Kind == DrafterKind.Datastore ? "datastore.jsonl" : "draft";
                    if (drafter.Kind == DrafterKind.Datastore) File.Copy(local, Path.Combine(temp, beside));
                    else CopyFolder(local, Path.Combine(temp, beside));
                    serveDrafter = drafter.At(Path.Combine(outDir, beside)).ToString();
                }
            }
            folder.Commit();
            await app.StopAsync(CancellationToken.None);
            var deployment = result.DeploymentManifest is null ? null : Path.Combine(outDir, "deployment.json");
            if (p.GetValue(json))
                Cli.WriteJson(p.InvocationConfiguration.Output, new
                {
                    status = m.RuntimeStatus.ToString(), id, passed = result.Passed, chosen = result.Chosen, report = Path.Combine(outDir, "report.json"),
                    deployment_manifest = deployment, model = deployment is null ? null : Path.Combine(outDir, "model"), speculative = serveDrafter, reasons = result.Reasons,
                    store = store.Location,
                });
            else
            {
                p.InvocationConfiguration.Output.Write(TerminalReport.Render(File.ReadAllText(Path.Combine(outDir, "report.md")), TerminalReport.Width()));
                // paths and commands go on lines of their own, never wrapped, so they can be copied whole
                var output = p.InvocationConfiguration.Output;
                output.WriteLine($"\nreport:\n  {Path.Combine(outDir, "report.json")}");
                if (deployment is not null)
                    output.WriteLine($"serve it:\n  sio serve {Path.Combine(outDir, "model")}{(serveDrafter is null or "none" ? "" : $" --speculative {serveDrafter}")}");
            }
            return result.Passed ? 0 : 3;
        });
        return cmd;
    }

    static void CopyFolder(string from, string to)
    {
        foreach (var f in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(from, f);
            if (rel.StartsWith(".sio") || rel == ArtifactFolders.ManifestFile) continue;
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(to, rel))!);
            File.Copy(f, Path.Combine(to, rel));
        }
    }
}
