using System.Text.Json;

namespace Sio.Pipeline;

/// <summary>
/// What to serve: a model artifact and the serving settings chosen for it (the drafter included).
/// Written to deployments/RUN.json after the report; deployments/current.json names the one that is live.
/// </summary>
public sealed record DeploymentManifest(string Id, string RunId, string Variant, string ModelKey, string ModelArtifact, string Drafter,
    string Report, double Speedup, double PricePerMillionTokens, DateTime CreatedUtc, ServingSettings? Serving = null)
{
    public const string Current = "current.json";
    /// <summary>A variant's name as a file name or model id: letters, digits, '-' and '.' (the rest become '-').</summary>
    public static string SafeName(string variant) => new(variant.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' ? c : '-').ToArray());
    /// <summary>The manifest that serves a measured variant (its model artifact and drafter), the one way every deployment is made.</summary>
    public static DeploymentManifest For(string id, string runId, VariantMeasurement v, double speedup, double pricePerMillionTokens) =>
        new(id, runId, v.Variant, v.Model.Key, $"{Artifacts.Containers.Artifacts}/{ArtifactRepository.ModelsPrefix}/{v.Model.Key}", v.Drafter,
            $"{Artifacts.Containers.Reports}/{runId}/report.json", speedup, pricePerMillionTokens, DateTime.UtcNow, v.Serving);

    /// <summary>The model id the deployment is served under (`/v1/models`): the variant's safe name and the model key's first 8 characters.</summary>
    [System.Text.Json.Serialization.JsonIgnore] public string ServedModelId => $"{SafeName(Variant)}-{ModelKey[..Math.Min(8, ModelKey.Length)]}";

    public string ToJson() => JsonSerializer.Serialize(this, OptimizationRequest.Json);
    public static DeploymentManifest? Parse(string? json) => json is null ? null : JsonSerializer.Deserialize<DeploymentManifest>(json, OptimizationRequest.Json);
}

/// <summary>Receives the deployment event (the self-host hot-swaps its served model; on Azure the event is the blob written to the deployments container).</summary>
public interface IDeploymentEvents
{
    Task DeployAsync(DeploymentManifest manifest, CancellationToken ct = default);
}
