#!/bin/bash
# Paired serving benchmark: plain and speculative `sio serve` processes alternate, ROUNDS rounds each, measured over
# loopback with `sio benchmark --endpoint`; prints speculative ÷ plain output tokens/s per round and concurrency.
# usage: bench/paired-serving.sh MODEL_DIR DATASET [DRAFTER=self-int4] [CONCURRENCY=1,4] [MAX_CONCURRENT=4] [REQUESTS=12] [ROUNDS=3]
set -euo pipefail
model=$1; dataset=$2; drafter=${3:-self-int4}; levels=${4:-1,4}; slots=${5:-4}; requests=${6:-12}; rounds=${7:-3}
sio=${SIO:-$(dirname "$0")/../cli/bin/Release/net10.0/sio}
out=$(mktemp -d)
for round in $(seq 1 "$rounds"); do
  for spec in none "$drafter"; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "$sio" serve "$model" --port "$port" --max-concurrent "$slots" --speculative "$spec" > "$out/serve.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$port/readyz" > /dev/null && break; sleep 1; done
    name=$([ "$spec" = none ] && echo plain || echo spec)
    "$sio" benchmark "$model" --endpoint "http://127.0.0.1:$port" --dataset "$dataset" --concurrency "$levels" --requests "$requests" \
      --max-new-tokens 64 --prompt-tokens-min 8 --prompt-tokens-max 2000 --out "$out/$name-$round" > /dev/null
    kill "$pid"; wait "$pid" 2> /dev/null || true
  done
done
python3 - "$out" "$rounds" <<'PY'
import json, sys, statistics
out, rounds = sys.argv[1], int(sys.argv[2])
def levels(path):
    found = {}
    def walk(o):
        if isinstance(o, dict):
            if 'concurrency' in o and 'output_tokens_per_second' in o: found[o['concurrency']] = o['output_tokens_per_second']
            for v in o.values(): walk(v)
        elif isinstance(o, list):
            for v in o: walk(v)
    walk(json.load(open(f"{path}/report.json"))); return found
ratios = {}
for r in range(1, rounds + 1):
    p, s = levels(f"{out}/plain-{r}"), levels(f"{out}/spec-{r}")
    for c in sorted(p): ratios.setdefault(c, []).append(s[c] / p[c])
for c, xs in ratios.items(): print(f"c={c}: " + " ".join(f"{x:.2f}x" for x in xs) + f"  median {statistics.median(xs):.2f}x")
PY
