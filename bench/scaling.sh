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
  build/bench/scaling "$L" "$HIDDEN" "$ITERS" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
print(f"| {r[\"layers\"]} | {r[\"model_bytes\"]/2**20:.0f} MiB | {r[\"seconds\"]:.1f} s | {r[\"seconds\"]/r[\"layers\"]:.2f} s | "
      f"{r[\"peak_rss_bytes\"]/2**20:.0f} MiB | {r[\"cache_bytes\"]/2**20:.0f} MiB |")'
done
