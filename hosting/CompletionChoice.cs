using System.Text;
using Sio.Generation;
using Sio.Serving;

namespace Sio.Hosting;

/// <summary>
/// One choice of an answer, as its generation job runs: the text (the engine cuts it at the first stop string), its logprobs, and —
/// when tools were offered — the text held back while it may still be a tool call, then read back into calls.
/// </summary>
sealed class CompletionChoice(int index, GenerationJob job, CancellationTokenSource cancel, CompletionRequest request)
{
    readonly StringBuilder _text = new();
    readonly List<TokenLogprob> _logprobs = new();
    int _logprobsSent;
    bool _holding = request.Tools is not null; // a stream holds text back while it may be a tool call

    public int Index { get; } = index;
    public GenerationResult? Result { get; private set; }
    public Exception? Error { get; private set; }
    public bool ClientGone { get; private set; }
    public IReadOnlyList<TokenLogprob> AllLogprobs => _logprobs;
    /// <summary>How much of the text a stream has sent.</summary>
    public int SentTextLength { get; private set; }
    public string Unsent => _text.ToString(SentTextLength, _text.Length - SentTextLength);
    public string? Content { get; private set; }
    public List<ToolCall> Calls { get; private set; } = [];
    public string FinishReason { get; private set; } = "stop";
    public int CompletionTokens { get; private set; }

    public IReadOnlyList<TokenLogprob> UnsentLogprobs() => _logprobs.Skip(_logprobsSent).ToList();

    /// <summary>Reads the job's pieces; <paramref name="send"/> (streaming) gets each safe piece, with its logprobs and text offset.</summary>
    public async Task ReadAsync(Func<CompletionChoice, string, IReadOnlyList<TokenLogprob>, int, Task>? send, CancellationToken aborted)
    {
        try
        {
            await foreach (var piece in job.Pieces.Reader.ReadAllAsync(aborted))
            {
                while (job.Logprobs?.Reader.TryRead(out var lp) == true) _logprobs.Add(lp);
                _text.Append(piece);
                if (send is not null && piece.Length > 0) await SendAsync(send);
            }
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            ClientGone = true;
            cancel.Cancel();
            try { await job.Result.Task; } catch { } // the deployment stays in use until its engine lets go of the job
            return;
        }
        try { Result = await job.Result.Task; }
        catch (OperationCanceledException) { ClientGone = true; }
        catch (Exception e) { Error = e; }
        while (job.Logprobs?.Reader.TryRead(out var lp) == true) _logprobs.Add(lp);
    }

    async Task SendAsync(Func<CompletionChoice, string, IReadOnlyList<TokenLogprob>, int, Task> send)
    {
        if (_holding && request.Tools!.Format.MayBeCall(_text.ToString())) return;
        _holding = false;
        var text = Unsent;
        var logprobs = UnsentLogprobs();
        (_logprobsSent, SentTextLength) = (_logprobs.Count, _text.Length);
        await send(this, text, logprobs, _text.Length - text.Length);
    }

    /// <summary>The answer's content, tool calls, finish reason and token count, once the job has ended.</summary>
    public void Finish(Tokenization.Tokenizer tokenizer)
    {
        var text = _text.ToString();
        FinishReason = Result?.FinishReason ?? "stop";
        CompletionTokens = Result?.TokenIds.Count ?? tokenizer.Encode(text, addBos: false).Count;
        Content = text;
        if (request.Tools is { } tools && (_holding || SentTextLength == 0))
        {
            var (content, calls) = tools.Format.Parse(text, tools.Names);
            if (calls.Count > 0) (Content, Calls, FinishReason) = (content, calls, "tool_calls");
        }
    }
}
