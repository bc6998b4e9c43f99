using System.CommandLine;
using Sio.Cli.Serving;
using Sio.Serving;
using Sio.Speculative;

namespace Sio.Cli;

public static class ServeCommand
{
    /// <summary>The engine's own defaults (<see cref="ServeOptions"/>): they exist once.</summary>
    static readonly ServeOptions Defaults = new();

    public static Command Create()
    {
        var dir = new Argument<string>("model") { Description = "The model folder to serve." };
        var host = new Option<string>("--host") { Description = "Address to listen on; any but loopback requires --api-key.", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port to listen on.", DefaultValueFactory = _ => 8000 };
        var key = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' on every endpoint but /healthz (default: $SIO_API_KEY, or the file $SIO_API_KEY_FILE names; prefer those: a command line is visible to every local user)." };
        var allowLocal = new Option<bool>("--allow-local-paths") { Description = "Enable POST /api/deployments {\"model\": DIR}, which loads any local model folder (off: 403)." };
        var concurrent = new Option<int>("--max-concurrent") { Description = "Requests decoded at the same time.", DefaultValueFactory = _ => Defaults.MaxConcurrent };
        var queue = new Option<int>("--queue") { Description = "Requests that may wait for a slot; beyond it the server answers 429.", DefaultValueFactory = _ => Defaults.QueueCapacity };
        var speculative = new Option<string>("--speculative") { Description = "Drafter: none, ngram, self-int4, draft:DIR, datastore, datastore:FILE.", DefaultValueFactory = _ => "none" };
        var draftTokens = new Option<string>("--draft-tokens") { Description = "1–32 or auto.", DefaultValueFactory = _ => "auto" };
        var chunk = new Option<int>("--prefill-chunk") { Description = "Chunked prefill: a longer prompt is read this many tokens per decode step, so running requests keep streaming (0: whole prompts).", DefaultValueFactory = _ => Defaults.PrefillChunkTokens };
        var provider = new Option<string>("--provider") { Description = "Execution provider: cpu, or cuda (needs the GPU build of ONNX Runtime and CUDA 13; refused clearly elsewhere).", DefaultValueFactory = _ => "cpu" };
        var spinning = new Option<string>("--spinning") { Description = "on: ONNX Runtime's idle threads spin between operators (faster decoding; beside a draft model they stop when each run returns); off: they sleep, leaving the cores to other processes.", DefaultValueFactory = _ => "on" };
        var cmd = new Command("serve", "Serve a model over OpenAI-compatible HTTP (/v1/completions, /v1/chat/completions, /v1/models, /healthz, /readyz, /metrics; POST /api/deployments {\"model\": DIR} hot-swaps the model; the /api pipeline routes answer 501) with continuous batching, until stopped.")
        {
            dir, host, port, key, concurrent, queue, speculative, draftTokens, chunk, provider, spinning, allowLocal,
        };
        cmd.SetAction(p =>
        {
            var serve = new ServeOptions
            {
                MaxConcurrent = p.GetValue(concurrent), QueueCapacity = p.GetValue(queue), PrefillChunkTokens = p.GetValue(chunk),
                Speculative = new SpeculativeOptions { Drafter = p.GetValue(speculative)!, DraftTokens = SpeculativeOptions.ParseDraftTokens(p.GetValue(draftTokens)) },
            };
            bool spin = p.GetValue(spinning) switch { "on" => true, "off" => false, var v => throw new SioException($"--spinning must be on or off, got '{v}'") };
            var listen = ListenAddress.Parse(p.GetValue(host)!, p.GetValue(port));
            var app = SioServer.Build(new ServerConfig(p.GetValue(dir)!, p.GetValue(host)!, p.GetValue(port), p.GetValue(key), serve, p.GetValue(provider)!, spin, p.GetValue(allowLocal)));
            p.InvocationConfiguration.Output.WriteLine($"serving {p.GetValue(dir)} on {listen.Url} ({(listen.IsLoopback ? "this machine only" : "every caller needs the API key")}; Ctrl+C stops)");
            app.Run();
            return 0;
        });
        return cmd;
    }
}
