using System.Reflection;
using System.Text.Json;

namespace Sio.Benchmarking;

/// <summary>An instance a deployment could run on, with its price and where the price came from.</summary>
/// <param name="Vcpus">Virtual CPUs (null where the offer does not fix them).</param>
/// <param name="Accelerator">The GPU, or null for a CPU-only instance.</param>
public sealed record Instance(string Name, string Kind, double PricePerHour, string Currency, string Source, string AsOf, string? Notes,
    int? Vcpus = null, string? Accelerator = null);

/// <summary>
/// The blended price as the reference product defines it: total throughput = (1 / p50 ITL) ×
/// concurrency; $ per 1M tokens = (1 − discount) × $/hour ÷ (throughput × 3600 ÷ 10^6) ÷ 4, the ÷ 4
/// standing for a 3:1 ratio of input to output tokens.
/// </summary>
public static class Pricing
{
    static readonly JsonSerializerOptions SnakeCase = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static double TotalTokensPerSecond(double itlP50Ms, int concurrency) => itlP50Ms > 0 ? 1000.0 / itlP50Ms * concurrency : 0;

    public static double BlendedPricePerMillionTokens(double pricePerHour, double discount, double totalTokensPerSecond) =>
        totalTokensPerSecond > 0 ? (1 - discount) * pricePerHour / (totalTokensPerSecond * 3600 / 1e6) / 4 : double.PositiveInfinity;

    /// <summary>The catalogue shipped with sio (core/Benchmarking/instances.json).</summary>
    public static IReadOnlyList<Instance> Catalogue()
    {
        using var s = Assembly.GetExecutingAssembly().GetManifestResourceStream("Sio.Benchmarking.instances.json")!;
        return JsonSerializer.Deserialize<List<Instance>>(s, SnakeCase)!;
    }

    /// <summary>The instance to price with: a catalogue entry, optionally with its price overridden, or a custom price.</summary>
    public static Instance Resolve(string? sku, double? pricePerHour)
    {
        if (sku is null)
            return pricePerHour is double p ? new Instance("custom", "custom", p, "USD", "--price-per-hour", "", null) : Catalogue()[0];
        var found = Catalogue().FirstOrDefault(i => string.Equals(i.Name, sku, StringComparison.OrdinalIgnoreCase))
            ?? throw new SioException($"--instance {sku} is not in the catalogue ({string.Join(", ", Catalogue().Select(i => i.Name))}); give --price-per-hour for another");
        return pricePerHour is double q ? found with { PricePerHour = q, Source = "--price-per-hour" } : found;
    }
}
