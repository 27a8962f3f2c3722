#!/usr/bin/env bash
# Peak RSS against depth on random-weight Qwen3-8B-shaped models (docs/results-scale.md, "memory
# and real shapes"): scripts/make_random_llama.py --preset qwen3-8b --layers L (BF16, untied,
# 151936 tokens, 2 GiB shards), then
#   quantize --iters 0 --format gguf:q4_k_m (opt-RTN, NSAMPLES x SEQLEN calibration tokens)
# for each L in DEPTHS; and, with TUNE=1, one tuned block (SignRoundV2, TUNE_ITERS iterations,
# TUNE_FLAGS) on the first depth, stopped after that block (--stop_after_units 1: the peak of a
# whole run is the peak of its largest block). Peak RSS from /usr/bin/time -v (VmHWM); VmRSS is
# also sampled every 2 s into <out>/q8-L.rss ("seconds kB"), beside the run's progress lines
# (<out>/q8-L.log, each stamped with the seconds since the start), which split the blocks' phase
# from the export's: the table gives the peak of each. Models of depth L are deleted after use
# unless KEEP=1 (36 blocks take 16 GB of disk).
#
# Usage: bench/scale_memory.sh [out_dir=/tmp/scale]   (from the repository root, after building)
# Environment: DEPTHS ("4 8"), NSAMPLES (8), SEQLEN (512), THREADS (2), TUNE (0), TUNE_ITERS (1),
#   TUNE_NSAMPLES (8), TUNE_FLAGS ("--batch_size 1 --gradient_accumulate_steps 8"), CACHE_BUDGET
#   (unset: the default), SR (build/src/signround), QUANT_FLAGS (extra flags of the depth runs,
#   e.g. "--disable_opt_rtn": plain RTN, 4-5x faster per block than opt-RTN on a loaded machine),
#   DEPTH_RUNS (1; 0: only the tuned block, e.g. TUNE=1 DEPTH_RUNS=0 TUNE_NSAMPLES=128 TUNE_FLAGS=
#   for the defaults' 128 x 2048 tokens at batch 8).
set -euo pipefail
OUT=${1:-/tmp/scale}
SR=${SR:-build/src/signround}
DATA=${SHARED:-../shared}/data/calib_stories.txt
DEPTHS=${DEPTHS:-"4 8"}; NSAMPLES=${NSAMPLES:-8}; SEQLEN=${SEQLEN:-512}; THREADS=${THREADS:-2}
TUNE=${TUNE:-0}; TUNE_ITERS=${TUNE_ITERS:-1}; TUNE_NSAMPLES=${TUNE_NSAMPLES:-8}
TUNE_FLAGS=${TUNE_FLAGS-"--batch_size 1 --gradient_accumulate_steps 8"}
QUANT_FLAGS=${QUANT_FLAGS:-}
BUDGET=()
[ -n "${CACHE_BUDGET:-}" ] && BUDGET=(--cache_budget "$CACHE_BUDGET")
mkdir -p "$OUT"
field() { awk -F': ' -v k="$2" '$0 ~ k {print $2}' "$1"; }
report() {  # report <label> <time file> [rss samples] [log]: wall, VmHWM, and the sampled peaks by phase
  local s; s=$(field "$2" "Elapsed \\(wall clock\\)")
  local phases=" | – | –"
  if [ -s "${3:-}" ] && [ -s "${4:-}" ]; then
    # The export starts at the last "block N/N" line; the samples before it are the blocks' phase.
    local t_exp; t_exp=$(awk '/^[0-9]+ block [0-9]+\/[0-9]+/ {t=$1} END {print t+0}' "$4")
    phases=$(awk -v t="$t_exp" '$1 <= t {b = $2 > b ? $2 : b} $1 > t {e = $2 > e ? $2 : e}
      END {printf " | %.2f GiB | %.2f GiB", b / 1048576, e / 1048576}' "$3")
  fi
  printf "| %s | %s | %.2f GiB%s |\n" "$1" "$s" "$(echo "$(field "$2" "Maximum resident set size") / 1048576" | bc -l)" "$phases"
}
# run <tag> <signround args...>: /usr/bin/time -v, VmRSS sampled every 2 s, stderr stamped.
run() {
  local tag=$1; shift
  rm -f "$OUT/$tag.rss" "$OUT/$tag.log"
  local t0; t0=$(date +%s)
  ( /usr/bin/time -v -o "$OUT/$tag.time" "$SR" "$@" 2>&1 >/dev/null |
      while IFS= read -r line; do echo "$(( $(date +%s) - t0 )) $line"; done > "$OUT/$tag.log" ) &
  local job=$! pid=""
  while kill -0 $job 2>/dev/null; do
    # The newest process with this output folder in its arguments: signround, not /usr/bin/time.
    [ -n "$pid" ] || pid=$(pgrep -n -f -- "--output_dir $OUT/$tag " || true)
    [ -n "$pid" ] && awk -v t=$(( $(date +%s) - t0 )) '/VmRSS/ {print t, $2}' "/proc/$pid/status" >> "$OUT/$tag.rss" 2>/dev/null
    sleep 2
  done
  wait $job || true
}
echo "| run | wall (h:mm:ss) | peak RSS (VmHWM) | sampled peak: blocks | sampled peak: export |"
echo "|---|---|---|---|---|"
first=1
for L in $DEPTHS; do
  M=$OUT/qwen8b-$L
  [ -s "$M/config.json" ] || python3 scripts/make_random_llama.py "$M" --preset qwen3-8b --layers "$L"
  rm -rf "$OUT/q8-$L" "$OUT/q8-$L.partial"
  if [ "${DEPTH_RUNS:-1}" = 1 ]; then
  # shellcheck disable=SC2086
  run "q8-$L" quantize --model "$M" --iters 0 --format gguf:q4_k_m $QUANT_FLAGS \
    --dataset "$DATA" --nsamples "$NSAMPLES" --seqlen "$SEQLEN" --output_dir "$OUT/q8-$L" --threads "$THREADS" \
    "${BUDGET[@]}"
  report "$L blocks, --iters 0 gguf:q4_k_m $QUANT_FLAGS, $NSAMPLES x $SEQLEN tokens" "$OUT/q8-$L.time" \
    "$OUT/q8-$L.rss" "$OUT/q8-$L.log"
  rm -rf "$OUT/q8-$L"
  fi
  if [ "$TUNE" = 1 ] && [ $first = 1 ]; then
    rm -rf "$OUT/t8-$L" "$OUT/t8-$L.partial"
    # shellcheck disable=SC2086
    run "t8-$L" quantize --model "$M" --iters "$TUNE_ITERS" \
      --format gguf:q4_k_m --dataset "$DATA" --nsamples "$TUNE_NSAMPLES" --seqlen 2048 $TUNE_FLAGS \
      --stop_after_units 1 --output_dir "$OUT/t8-$L" --threads "$THREADS" "${BUDGET[@]}"
    report "1 tuned block of $L, $TUNE_ITERS iters, $TUNE_NSAMPLES x 2048 tokens, $TUNE_FLAGS" "$OUT/t8-$L.time" \
      "$OUT/t8-$L.rss"
    rm -rf "$OUT/t8-$L" "$OUT/t8-$L.partial"
  fi
  first=0
  [ "${KEEP:-0}" = 1 ] || rm -rf "$M"
done
