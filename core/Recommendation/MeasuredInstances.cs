using Sio.Benchmarking;

namespace Sio.Recommendation;

/// <summary>
/// Which catalogue instances the measurements made on this worker stand for. sio does not extrapolate between hardware:
/// a CPU-only instance counts when it has this worker's number of vCPUs, a GPU instance when the worker runs the CUDA or
/// TensorRT provider; every other instance is listed as not measured, with what measuring it would need.
/// </summary>
public static class MeasuredInstances
{
    public static (List<Instance> Measured, List<string> NotMeasured) Split(IReadOnlyList<Instance> instances, string provider, int processorCount)
    {
        var measured = new List<Instance>();
        var notMeasured = new List<string>();
        foreach (var i in instances)
        {
            if (i.Accelerator is null && provider == "cpu" && i.Vcpus == processorCount) measured.Add(i);
            else if (i.Accelerator is not null && provider is "cuda" or "tensorrt") measured.Add(i);
            else notMeasured.Add(i.Accelerator is { } gpu
                ? $"{i.Name}: needs an {gpu}; this worker measured on {(provider == "cpu" ? $"{processorCount} CPU cores" : provider)}: run the recommendation on that instance"
                : $"{i.Name}: has {i.Vcpus?.ToString() ?? "an unfixed number of"} vCPUs, this worker {processorCount}: run the recommendation on that instance");
        }
        return (measured, notMeasured);
    }

    /// <summary>The instances a request considers: those it names, or the whole catalogue.</summary>
    public static IReadOnlyList<Instance> Considered(RecommendationRequest request) =>
        request.Instances is { Length: > 0 } names ? names.Select(n => Pricing.Resolve(n, null)).ToList() : Pricing.Catalogue();
}
