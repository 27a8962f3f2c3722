#!/usr/bin/env bash
# Peak RSS against depth on random-weight Qwen3-8B-shaped models (docs/results-scale.md, "memory
# and real shapes"): scripts/make_random_llama.py --preset qwen3-8b --layers L (BF16, untied,
# 151936 tokens, 2 GiB shards), then
#   quantize --iters 0 --format gguf:q4_k_m (opt-RTN, NSAMPLES x SEQLEN calibration tokens)
# for each L in DEPTHS; and, with TUNE=1, one tuned block (SignRoundV2, TUNE_ITERS iterations,
# TUNE_FLAGS) on the first depth, stopped after that block (--stop_after_units 1: the peak of a
# whole run is the peak of its largest block). Peak RSS from /usr/bin/time -v (VmHWM). Models
# of depth L are deleted after use unless KEEP=1 (36 blocks take 16 GB of disk).
#
# Usage: bench/scale_memory.sh [out_dir=/tmp/scale]   (from the repository root, after building)
# Environment: DEPTHS ("4 8"), NSAMPLES (8), SEQLEN (512), THREADS (2), TUNE (0), TUNE_ITERS (1),
#   TUNE_NSAMPLES (8), TUNE_FLAGS ("--batch_size 1 --gradient_accumulate_steps 8"), CACHE_BUDGET
#   (unset: the default), SR (build/src/signround).
set -euo pipefail
OUT=${1:-/tmp/scale}
SR=${SR:-build/src/signround}
DATA=${SHARED:-../shared}/data/calib_stories.txt
DEPTHS=${DEPTHS:-"4 8"}; NSAMPLES=${NSAMPLES:-8}; SEQLEN=${SEQLEN:-512}; THREADS=${THREADS:-2}
TUNE=${TUNE:-0}; TUNE_ITERS=${TUNE_ITERS:-1}; TUNE_NSAMPLES=${TUNE_NSAMPLES:-8}
TUNE_FLAGS=${TUNE_FLAGS:-"--batch_size 1 --gradient_accumulate_steps 8"}
BUDGET=()
[ -n "${CACHE_BUDGET:-}" ] && BUDGET=(--cache_budget "$CACHE_BUDGET")
mkdir -p "$OUT"
field() { awk -F': ' -v k="$2" '$0 ~ k {print $2}' "$1"; }
report() {  # report <label> <time file>
  local s; s=$(field "$2" "Elapsed \\(wall clock\\)")
  printf "| %s | %s | %.2f GiB |\n" "$1" "$s" "$(echo "$(field "$2" "Maximum resident set size") / 1048576" | bc -l)"
}
echo "| run | wall (h:mm:ss) | peak RSS |"
echo "|---|---|---|"
first=1
for L in $DEPTHS; do
  M=$OUT/qwen8b-$L
  [ -s "$M/config.json" ] || python3 scripts/make_random_llama.py "$M" --preset qwen3-8b --layers "$L"
  rm -rf "$OUT/q8-$L" "$OUT/q8-$L.partial"
  /usr/bin/time -v -o "$OUT/q8-$L.time" "$SR" quantize --quiet --model "$M" --iters 0 --format gguf:q4_k_m \
    --dataset "$DATA" --nsamples "$NSAMPLES" --seqlen "$SEQLEN" --output_dir "$OUT/q8-$L" --threads "$THREADS" \
    "${BUDGET[@]}" > /dev/null
  report "$L blocks, --iters 0 gguf:q4_k_m, $NSAMPLES x $SEQLEN tokens" "$OUT/q8-$L.time"
  rm -rf "$OUT/q8-$L"
  if [ "$TUNE" = 1 ] && [ $first = 1 ]; then
    rm -rf "$OUT/t8-$L" "$OUT/t8-$L.partial"
    # shellcheck disable=SC2086
    /usr/bin/time -v -o "$OUT/t8-$L.time" "$SR" quantize --quiet --model "$M" --iters "$TUNE_ITERS" \
      --format gguf:q4_k_m --dataset "$DATA" --nsamples "$TUNE_NSAMPLES" --seqlen 2048 $TUNE_FLAGS \
      --stop_after_units 1 --output_dir "$OUT/t8-$L" --threads "$THREADS" "${BUDGET[@]}" > /dev/null 2>&1 || true
    report "1 tuned block of $L, $TUNE_ITERS iters, $TUNE_NSAMPLES x 2048 tokens, $TUNE_FLAGS" "$OUT/t8-$L.time"
    rm -rf "$OUT/t8-$L" "$OUT/t8-$L.partial"
  fi
  first=0
  [ "${KEEP:-0}" = 1 ] || rm -rf "$M"
done
