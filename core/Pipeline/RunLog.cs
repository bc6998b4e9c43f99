using Microsoft.DurableTask;

namespace Sio.Pipeline;

/// <summary>
/// A run's account of itself, kept in its custom status so that any poller (the console, `sio optimize`, a script)
/// sees it: the current step, every finished step with its duration, and a timestamped log of what happened.
/// Deterministic: every time is the orchestration's own clock, so a replay rebuilds the same log.
/// </summary>
sealed class RunLog(TaskOrchestrationContext context, int steps)
{
    readonly List<StepTime> _done = [];
    readonly List<RunEvent> _events = [];
    (int Number, string Name, DateTime Since) _current = (0, "", context.CurrentUtcDateTime);

    /// <summary>Enters step <paramref name="number"/> (ending the one before) or, for the same step, updates its detail.</summary>
    public void Step(string name, int number, string? detail = null)
    {
        if (number != _current.Number)
        {
            EndStep();
            _current = (number, name, context.CurrentUtcDateTime);
            Event(detail is null ? $"{name} started" : $"{name} started: {detail}");
        }
        context.SetCustomStatus(new PipelineStatus(name, number, steps, detail, Done: [.. _done], Events: [.. _events]));
    }

    public void Event(string message) => _events.Add(new RunEvent(context.CurrentUtcDateTime, message));

    /// <summary>The run ended well: the last step's duration, the outcome, and the final status.</summary>
    public void Finish(string outcome)
    {
        EndStep();
        Event(outcome);
        context.SetCustomStatus(new PipelineStatus("done", steps, steps, outcome, Done: [.. _done], Events: [.. _events]));
    }

    /// <summary>Step <paramref name="name"/> failed: the status names it and the reason, keeping the steps done before it.</summary>
    public void Fail(string name, int number, string reason)
    {
        Event($"{name} failed: {reason}");
        context.SetCustomStatus(new PipelineStatus(name, number, steps, null, name, reason, Done: [.. _done], Events: [.. _events]));
    }

    void EndStep()
    {
        if (_current.Number == 0) return;
        var seconds = Math.Round((context.CurrentUtcDateTime - _current.Since).TotalSeconds, 2);
        _done.Add(new StepTime(_current.Number, _current.Name, seconds, _current.Since));
        Event($"{_current.Name} done in {seconds:0.0} s");
        _current = (0, "", context.CurrentUtcDateTime);
    }
}
