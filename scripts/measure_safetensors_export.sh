#!/usr/bin/env bash
# Export time and peak memory of each safetensors format (docs/formats-safetensors.md).
# usage: scripts/measure_safetensors_export.sh MODEL_DIR [OUT_DIR] [THREADS]
# Runs `signround quantize` (plain RTN; NVFP4 needs calibration, so optimized RTN on
# demo/stories.txt with 8 x 128 tokens) once per (scheme, format), each in a fresh process
# under /usr/bin/time -v, and prints: scheme, format, export seconds (the run record's
# export_seconds), whole-process peak RSS, output size.
set -euo pipefail
model=${1:?model folder}
out=${2:-/tmp/sr-export-measure}
threads=${3:-2}
cli="$(dirname "$0")/../build/src/signround"
rm -rf "$out" && mkdir -p "$out"
printf "%-8s %-11s %10s %12s %12s\n" scheme format export_s peak_rss_MiB size_MiB
run() {  # scheme format extra-args...
  local s=$1 f=$2; shift 2
  local d="$out/$s-$f"
  /usr/bin/time -v "$cli" quantize --model "$model" --output_dir "$d" --scheme "$s" --format "$f" \
    --iters 0 --threads "$threads" --quiet --json "$@" > "$d.json" 2> "$d.time"
  local secs rss size
  secs=$(python3 -c "import json,sys; print('%.3f' % json.load(open(sys.argv[1]))['export_seconds'][sys.argv[2]])" "$d.json" "$f")
  rss=$(awk -F: '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$d.time")
  size=$(du -sb "$d" | awk '{printf "%.1f", $1/1048576}')
  printf "%-8s %-11s %10s %12s %12s\n" "$s" "$f" "$secs" "$rss" "$size"
}
for s in W4A16 W3A16 W2A16G64 W8A16; do
  for f in fake auto_round auto_gptq; do run "$s" "$f" --disable_opt_rtn; done
done
for s in MXFP4 MXFP8; do
  for f in fake auto_round; do run "$s" "$f" --disable_opt_rtn; done
done
for f in fake auto_round; do
  run NVFP4 "$f" --dataset "$(dirname "$0")/../demo/stories.txt" --nsamples 8 --seqlen 128
done
