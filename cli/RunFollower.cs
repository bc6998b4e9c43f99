using Microsoft.DurableTask.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Sio.Pipeline;

namespace Sio.Cli;

/// <summary>
/// Follows a run of the in-process task hub from the terminal (`sio optimize`, `sio recommend`): every finished step with
/// its duration (also steps that began and ended between two polls), the events <c>show</c> selects, and the current
/// step, until the run ends. Ctrl+C or SIGTERM stops the host and stops following at once rather than waiting for the
/// step under way; what was built and measured is stored, so the same command again continues from it.
/// </summary>
static class RunFollower
{
    public static async Task<OrchestrationMetadata> FollowAsync(IServiceProvider services, string id, string kind, TextWriter err, Func<string, bool>? show, CancellationToken ct)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct, services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping);
        var client = services.GetRequiredService<DurableTaskClient>();
        int printed = 0, events = 0;
        string last = "";
        try
        {
            while (true)
            {
                var m = await client.GetInstanceAsync(id, getInputsAndOutputs: true, stop.Token);
                if (m?.ReadCustomStatusAs<PipelineStatus>() is { } s)
                {
                    foreach (var d in (s.Done ?? []).Skip(printed)) err.WriteLine($"[{d.Number}/{s.Steps}] {d.Step}: done in {d.Seconds:0.0} s");
                    printed = Math.Max(printed, s.Done?.Count ?? 0);
                    if (show is not null) foreach (var e in (s.Events ?? []).Skip(events).Where(e => show(e.Message))) err.WriteLine($"  {e.Message}");
                    events = Math.Max(events, s.Events?.Count ?? 0);
                    if (s.Step != "done" && $"{s.Step}{s.Detail}" != last) err.WriteLine($"[{s.StepNumber}/{s.Steps}] {s.Step}{(s.Detail is null ? "" : $" ({s.Detail})")}…");
                    last = $"{s.Step}{s.Detail}";
                }
                if (m?.IsCompleted == true) return m;
                await Task.Delay(300, stop.Token);
            }
        }
        catch (OperationCanceledException) { throw new SioException($"{kind} {id} interrupted; run the same command again to continue from what is stored"); }
    }
}
