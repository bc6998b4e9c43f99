using System.Diagnostics;
using Sio.Generation;

namespace Sio.Serving;

/// <summary>
/// The serving engine's spans (ActivitySource "Sio.Serving"), after OpenTelemetry's gen_ai semantic conventions: one
/// span per request (<c>{operation} {model}</c>, with the request's parameters, finish reasons and token usage), and
/// under it, for each generation job, <c>queue</c> (arrival to admission), <c>prefill</c> (admission to the first
/// token), <c>decode</c> (first token to the end) and one <c>speculative verification</c> per verified draft. The engine's
/// thread serves many requests at once, so its spans are started with explicit parents and never left as
/// <see cref="Activity.Current"/>. Without a listener (no exporter configured) nothing is created.
/// </summary>
public static class ServingTraces
{
    public const string SourceName = "Sio.Serving";
    static readonly ActivitySource Source = new(SourceName);

    /// <summary>The request's span, made current for the caller (the jobs it creates take it as their parent).</summary>
    /// <param name="operation">gen_ai.operation.name: <c>chat</c> or <c>text_completion</c>.</param>
    /// <param name="parent">The caller's trace context (a W3C traceparent header), if any.</param>
    public static Activity? Request(string operation, string model, GenerationOptions options, int promptTokens, int choices, ActivityContext parent = default)
    {
        var span = Source.StartActivity($"{operation} {model}", ActivityKind.Server, parent);
        if (span is null) return null;
        span.SetTag("gen_ai.operation.name", operation);
        span.SetTag("gen_ai.provider.name", "sio");
        span.SetTag("gen_ai.request.model", model);
        span.SetTag("gen_ai.request.max_tokens", options.MaxTokens);
        span.SetTag("gen_ai.request.temperature", (double)options.Sampling.Temperature);
        span.SetTag("gen_ai.request.top_p", (double)options.Sampling.TopP);
        if (options.Sampling.Seed is int seed) span.SetTag("gen_ai.request.seed", seed);
        if (options.StopStrings.Count > 0) span.SetTag("gen_ai.request.stop_sequences", options.StopStrings.ToArray());
        if (choices > 1) span.SetTag("gen_ai.request.choice.count", choices);
        span.SetTag("gen_ai.usage.input_tokens", promptTokens);
        return span;
    }

    /// <summary>Closes the request's span with what the answer was.</summary>
    public static void Answered(Activity? span, string responseId, string model, IReadOnlyList<string> finishReasons, int outputTokens)
    {
        if (span is null) return;
        span.SetTag("gen_ai.response.id", responseId);
        span.SetTag("gen_ai.response.model", model);
        span.SetTag("gen_ai.response.finish_reasons", finishReasons.ToArray());
        span.SetTag("gen_ai.usage.output_tokens", outputTokens);
    }

    /// <summary>A span of the engine's thread: started at <paramref name="start"/> under <paramref name="parent"/>, not made current; none without a parent.</summary>
    internal static Activity? Step(string name, ActivityContext parent, DateTime start)
    {
        if (parent == default) return null; // a job outside any request span (a load benchmark's) is not traced
        var previous = Activity.Current;
        var span = Source.StartActivity(name, ActivityKind.Internal, parent, startTime: start);
        Activity.Current = previous;
        return span;
    }

    /// <summary>A span that has already happened (the wait in the queue).</summary>
    internal static void Past(string name, ActivityContext parent, DateTime start, DateTime end, params (string Key, object Value)[] tags)
    {
        using var span = Step(name, parent, start);
        if (span is null) return;
        foreach (var (k, v) in tags) span.SetTag(k, v);
        span.SetEndTime(end);
    }

    /// <summary>Ends a span at <paramref name="end"/> with its last tags.</summary>
    internal static void End(Activity? span, DateTime end, params (string Key, object Value)[] tags)
    {
        if (span is null) return;
        foreach (var (k, v) in tags) span.SetTag(k, v);
        span.SetEndTime(end);
        span.Dispose();
    }
}
