using System.Text.Json;
using System.Text.Json.Nodes;
using Sio.Artifacts;

namespace Sio.Pipeline;

/// <summary>
/// Every deployment a store holds, as a person choosing one needs to see it: what it serves (model, variant,
/// techniques, drafter), what it measured (from its run's report), when it was last made live, and whether it is
/// live now. The history of what was made live, when, is deployments/history.json, appended by the deploy step.
/// </summary>
public static class DeploymentCatalog
{
    public const string History = "history.json";
    const int HistoryLength = 200;

    public sealed record Entry(string Deployment, string Id, DateTime DeployedUtc);

    /// <summary>Notes that <paramref name="manifest"/> (stored as deployments/<paramref name="name"/>) went live now.</summary>
    public static async Task RecordAsync(IObjectStore store, string name, DeploymentManifest manifest, DateTime at, CancellationToken ct = default)
    {
        var history = await ReadAsync(store, ct);
        history.Add(new Entry(name, manifest.Id, at));
        await store.PutTextAsync(Containers.Deployments, History, JsonSerializer.Serialize(history.TakeLast(HistoryLength), OptimizationRequest.Json), ct);
    }

    public static async Task<List<Entry>> ReadAsync(IObjectStore store, CancellationToken ct = default)
    {
        try { return JsonSerializer.Deserialize<List<Entry>>(await store.GetTextAsync(Containers.Deployments, History, ct) ?? "[]", OptimizationRequest.Json) ?? []; }
        catch (JsonException) { return []; } // a damaged history loses the dates, never the deployments
    }

    /// <summary>The live deployment (or null), and every published deployment, newest first, each with its card's facts.</summary>
    public static async Task<object> ListAsync(IObjectStore store, CancellationToken ct = default)
    {
        var current = DeploymentManifest.Parse(await store.GetTextAsync(Containers.Deployments, DeploymentManifest.Current, ct));
        var history = await ReadAsync(store, ct);
        var reports = new Dictionary<string, JsonNode?>();
        var cards = new List<(DateTime Sort, object Card)>();
        foreach (var o in await store.ListAsync(Containers.Deployments, "", ct))
        {
            if (o.Name is DeploymentManifest.Current or History) continue;
            DeploymentManifest? m;
            try { m = DeploymentManifest.Parse(await store.GetTextAsync(Containers.Deployments, o.Name, ct)); }
            catch (JsonException) { continue; }
            if (m is null) continue;
            if (!reports.TryGetValue(m.RunId, out var report))
                reports[m.RunId] = report = JsonNode.Parse(await store.GetTextAsync(Containers.Reports, $"{m.RunId}/report.json", ct) ?? "null");
            var deployed = history.LastOrDefault(h => h.Deployment == o.Name)?.DeployedUtc;
            cards.Add((deployed ?? m.CreatedUtc, Card(o.Name, m, report, deployed, live: current?.Id == m.Id)));
        }
        return new { current, deployments = cards.OrderByDescending(c => c.Sort).Select(c => c.Card).ToList() };
    }

    static object Card(string name, DeploymentManifest m, JsonNode? report, DateTime? deployed, bool live)
    {
        var measured = report?["variants"]?.AsArray().FirstOrDefault(v => v?["variant"]?.GetValue<string>() == m.Variant)?.Deserialize<VariantMeasurement>(OptimizationRequest.Json);
        var first = measured?.Levels.OrderBy(l => l.Concurrency).FirstOrDefault();
        var best = measured?.Levels.MaxBy(l => l.OutputTokensPerSecond);
        return new
        {
            deployment = name, m.Id, m.RunId, m.Variant, model = m.ModelKey, servedModel = m.ServedModelId, m.Drafter,
            techniques = m.Variant == "baseline" ? [] : m.Variant.Split('+'),
            m.Speedup, m.PricePerMillionTokens, m.CreatedUtc, deployedUtc = deployed, live,
            measured = measured is null ? null : new
            {
                measured.Perplexity, measured.AcceptanceRate, measured.Instance,
                concurrency1 = first is null ? null : new { first.Concurrency, first.OutputTokensPerSecond, first.TtftP50Ms, first.TpotP50Ms },
                best = best is null ? null : new { best.Concurrency, best.OutputTokensPerSecond, best.TtftP50Ms, best.TpotP50Ms },
            },
        };
    }
}
