#!/usr/bin/env bash
# Data-parallel tuning speed (issue 17, item 4): SignRound on the 4m demo model in one process on
# one thread against two ranks on loopback with one thread each, at the same global batch; also the
# one process holding both ranks' shards (--data_shards 2), whose output the 2 ranks must match
# byte for byte. Reports tuning iterations/s (block tuning time from the run record, best of
# REPEATS alternated runs: the least disturbed on a shared machine), the bytes each rank hands the
# collectives per step, loopback bytes during the 2-rank run (an upper bound: other traffic too),
# each process's CPU seconds (user + system: what the run costs, whatever else the machine runs),
# and each output's KLD to the FP model.
#
# Usage: bench/ddp_speed.sh [out_dir]     (from the repository root, after building)
# Environment: REPEATS (3), ITERS (50), NSAMPLES (32), SEQLEN (256), BATCH (8), SCHEME (W4A16),
#              SR (build/src/signround), SHARED (../shared), PORT (29517), CHUNKS (40, KLD eval)
set -euo pipefail
OUT=${1:-/tmp/signround-ddp-speed}
SR=${SR:-build/src/signround}
SHARED=${SHARED:-../shared}
REPEATS=${REPEATS:-3}
ITERS=${ITERS:-50}
PORT=${PORT:-29517}
MODEL=demo/tinystories-llama-4m
export OMP_NUM_THREADS=1
COMMON="--model $MODEL --dataset $SHARED/data/calib_stories.txt --scheme ${SCHEME:-W4A16} --iters $ITERS \
  --nsamples ${NSAMPLES:-32} --seqlen ${SEQLEN:-256} --batch_size ${BATCH:-8} --threads 1 --quiet --json"
mkdir -p "$OUT"
lo_tx() { awk '$1 == "lo:" { print $10 }' /proc/net/dev; }
TIMEFORMAT='%U %S'
# cpu FILE CMD...: runs CMD, writing its user + system CPU seconds to FILE.
cpu() { local f=$1; shift; { time "$@" ; } 2> >(awk 'END { print $1 + $2 }' > "$f"); }
: > "$OUT/runs.txt"
for rep in $(seq "$REPEATS"); do
  rm -rf "$OUT"/plain "$OUT"/one2 "$OUT"/ddp "$OUT"/ddp1
  cpu "$OUT/plain.cpu" "$SR" quantize $COMMON --output_dir "$OUT/plain" > "$OUT/plain.json"
  cpu "$OUT/one2.cpu" "$SR" quantize $COMMON --data_shards 2 --output_dir "$OUT/one2" > "$OUT/one2.json"
  before=$(lo_tx)
  cpu "$OUT/ddp.cpu" "$SR" quantize $COMMON --output_dir "$OUT/ddp" --rank 0 --world_size 2 --master_port "$PORT" \
    > "$OUT/ddp.json" &
  cpu "$OUT/ddp1.cpu" "$SR" quantize $COMMON --output_dir "$OUT/ddp1" --rank 1 --world_size 2 --master_port "$PORT" \
    > /dev/null
  wait
  sleep 1  # the CPU figures are written by a process substitution
  lo=$(( $(lo_tx) - before ))
  for m in plain one2 ddp; do
    c=$(cat "$OUT/$m.cpu"); [ "$m" = ddp ] && c="$c/$(cat "$OUT/ddp1.cpu")"
    jq -r --arg m "$m" --arg lo "$lo" --arg c "$c" \
      '"\($m) \([.units[].seconds] | add) \(.units | length) \(.data_parallel.payload_bytes // 0) \($lo) \(.seconds) \($c)"' \
      "$OUT/$m.json" >> "$OUT/runs.txt"
  done
done
cmp -s "$OUT/ddp/model.safetensors" "$OUT/one2/model.safetensors" && same=identical || same=DIFFERENT
echo "2 ranks vs 1 process with --data_shards 2: model.safetensors $same"
echo
echo "| run | processes x threads | best tuning s | iterations/s | CPU s per process (last run) | payload bytes/step/rank | loopback bytes/step | KLD to F32 |"
echo "|---|---|---|---|---|---|---|---|"
for m in plain one2 ddp; do
  kld=$("$SR" eval --model "$OUT/$m" --text "$SHARED/data/tinystories_val.txt" --ctx 256 --chunks "${CHUNKS:-40}" \
        --kld-base "$MODEL" --threads 2 --json --quiet | jq -r '"\(.kld) ± \(.kld_stderr)"')
  awk -v m="$m" -v it="$ITERS" -v kld="$kld" '$1 == m { if (b == 0 || $2 < b) b = $2; u = $3; p = $4; lo = $5; c = $7 }
    END { pt = m == "ddp" ? "2 x 1" : "1 x 1"; steps = it * u;
          printf "| %s | %s | %.2f | %.2f | %s | %s | %s | %s |\n", m, pt, b, steps / b, c,
                 m == "ddp" ? sprintf("%.0f", p / steps) : "-", m == "ddp" ? sprintf("%.0f", lo / steps) : "-", kld }' \
    "$OUT/runs.txt"
done
