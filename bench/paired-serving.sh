#!/bin/bash
# alternating plain / self-int4 servers on the 110M fp32 model, c=1,4, 12 requests of 64 tokens
S=/work/main/cli/bin/Release/net10.0/sio; export SIO_HOME=/tmp/siohome
M=/tmp/m/syn110m
for round in 4 5 6; do
 for spec in none self-int4; do
  port=$((18200 + round * 10 + (spec == "none" ? 0 : 1))) 2>/dev/null
  [ "$spec" = none ] && port=$((18200 + round*10)) || port=$((18201 + round*10))
  $S serve $M --port $port --max-concurrent 8 --speculative $spec > /tmp/pair-serve.log 2>&1 &
  pid=$!
  for i in $(seq 1 60); do curl -s localhost:$port/readyz >/dev/null && break; sleep 1; done
  $S benchmark $M --endpoint http://127.0.0.1:$port --dataset /tmp/short-prompts.jsonl --concurrency 8,16 --requests 16 --max-new-tokens 64 --prompt-tokens-min 8 --prompt-tokens-max 2000 --out /tmp/pair-$spec-$round --json > /tmp/pair-$spec-$round.json 2>/dev/null
  kill $pid; wait $pid 2>/dev/null
  python3 -c "
import json; r=json.load(open('/tmp/pair-$spec-$round/report.json'))
def find(o):
    if isinstance(o,dict):
        if 'concurrency' in o and ('output_tokens_per_second' in o or 'outputTokensPerSecond' in o): print('$spec', $round, o['concurrency'], o.get('output_tokens_per_second', o.get('outputTokensPerSecond')))
        for v in o.values(): find(v)
    elif isinstance(o,list):
        for v in o: find(v)
find(r)"
 done
done
