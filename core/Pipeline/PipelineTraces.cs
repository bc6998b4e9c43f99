using System.Diagnostics;
using Microsoft.DurableTask;

namespace Sio.Pipeline;

/// <summary>
/// One span per step of an optimization run (ActivitySource "Sio.Pipeline"): named after the step (<c>validate</c>,
/// <c>import</c>, <c>quantize</c>, <c>compile</c>, <c>benchmark</c>, <c>publish</c>, <c>deploy</c>), tagged with the run's
/// id and what the step worked on, and marked as an error with the reason when the step fails.
/// </summary>
public static class PipelineTraces
{
    public const string SourceName = "Sio.Pipeline";
    static readonly ActivitySource Source = new(SourceName);

    /// <summary>Runs a step inside its span.</summary>
    public static async Task<T> Step<T>(string step, TaskActivityContext context, string? subject, Func<Task<T>> run)
    {
        using var span = Source.StartActivity($"sio {step}");
        span?.SetTag("sio.run.id", context.InstanceId);
        span?.SetTag("sio.step", step);
        if (subject is not null) span?.SetTag("sio.subject", subject);
        try { return await run(); }
        catch (Exception e)
        {
            span?.SetStatus(ActivityStatusCode.Error, e.Message);
            throw;
        }
    }
}
