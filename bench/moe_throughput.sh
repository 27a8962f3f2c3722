#!/usr/bin/env bash
# Eval throughput of a MoE against a dense model of equal active parameters (issue 14, item 6):
# the upcycled Qwen3-MoE (8 experts, top-2) and scripts/make_upcycled_moe.py --arch dense (the
# 4m model with its MLP twice as wide: the same active parameters per token), beside the 4m model.
# Each `signround eval` runs on one thread; the runs alternate REPEATS times and the best
# tokens/s of each model is reported (the least disturbed run on a shared machine).
#
# Usage: bench/moe_throughput.sh [out_dir]     (from the repository root, after building)
# Environment: REPEATS (6), CHUNKS (60), CTX (256), SR (build/src/signround), SHARED (../shared).
set -euo pipefail
OUT=${1:-/tmp/signround-moe-throughput}
SR=${SR:-build/src/signround}
SHARED=${SHARED:-../shared}
REPEATS=${REPEATS:-6}
CHUNKS=${CHUNKS:-60}
CTX=${CTX:-256}
mkdir -p "$OUT"
[ -s "$OUT/moe/model.safetensors" ] || python3 scripts/make_upcycled_moe.py "$OUT/moe" 2>/dev/null
[ -s "$OUT/dense/model.safetensors" ] || python3 scripts/make_upcycled_moe.py "$OUT/dense" --arch dense 2>/dev/null
MODELS="$OUT/moe $OUT/dense demo/tinystories-llama-4m"
: > "$OUT/runs.txt"
for _ in $(seq "$REPEATS"); do
  for m in $MODELS; do
    "$SR" eval --model "$m" --text "$SHARED/data/tinystories_val.txt" --ctx "$CTX" --chunks "$CHUNKS" \
      --threads 1 --json --quiet | jq -r --arg m "$m" '"\($m) \(.ppl) \(.tokens_per_second)"' >> "$OUT/runs.txt"
  done
done
echo "| model | active parameters | PPL | best tokens/s (1 thread) |"
echo "|---|---|---|---|"
for m in $MODELS; do
  active=$("$SR" inspect --model "$m" 2>/dev/null | sed -n 's/^parameters *[0-9]* (\([0-9]*\) active.*/\1/p; s/^parameters *\([0-9]*\)$/\1/p' | head -1)
  awk -v m="$m" -v a="$active" '$1 == m { if ($3 > b) b = $3; p = $2 } END { printf "| %s | %s | %.4f | %.0f |\n", m, a, p, b }' "$OUT/runs.txt"
done
