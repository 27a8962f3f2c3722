#!/usr/bin/env bash
# Time and peak memory of SignRound (W4A16, 20 iters, 32 x 256 tokens) on random models
# of 2, 4, 8, 16 blocks of the same width: time should grow linearly, memory stay flat.
#   bench/scaling.sh [hidden=512] [iters=20]
set -euo pipefail
cd "$(dirname "$0")/.."
HIDDEN=${1:-512}; ITERS=${2:-20}
echo "| blocks | model size | time | time per block | peak RSS | activation caches |"
echo "|---|---|---|---|---|---|"
for L in 2 4 8 16; do
  build/bench/scaling "$L" "$HIDDEN" "$ITERS" | jq -r '"| \(.layers) | \(.model_bytes/1048576|round) MiB | \(.seconds*10|round/10) s | \(.seconds/.layers*100|round/100) s | \(.peak_rss_bytes/1048576|round) MiB | \(.cache_bytes/1048576|round) MiB |"'
done
