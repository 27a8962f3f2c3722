#!/usr/bin/env bash
# Data-parallel tuning speed (issue 17, item 4): SignRound in one process on one thread against two
# ranks on loopback with one thread each, at the same global batch; also (MODE=4m) the one process
# holding both ranks' shards (--data_shards 2), whose output the 2 ranks must match byte for byte.
# Reports tuning iterations/s (from the run record: `loop` counts the sign-SGD steps alone, `unit`
# the whole block with its initial scale search and encoding; best of REPEATS alternated runs: the
# least disturbed on a shared machine), the bytes each rank hands the collectives per step,
# loopback bytes during the 2-rank run (an upper bound: other traffic too), each process's CPU
# seconds (user + system: what the run costs, whatever else the machine runs), and (MODE=4m) each
# output's KLD to the FP model.
#
# Modes:
#   MODE=4m  the 4m demo model (4 blocks, hidden 256): W4A16, 32 samples x 256 tokens, batch 8,
#            50 iterations, 3 repeats. Its blocks are small: weight qdq and the sign-SGD update,
#            which every rank repeats, are a large part of a step.
#   MODE=1b  the random-weight Llama-3.2-1B shape (scripts/make_random_llama.py --preset
#            llama-3.2-1b --layers LAYERS, written to OUT once; 0.8 GB with 2 blocks: hidden 2048,
#            intermediate 8192, 61 M weights a block), where the matmuls dominate a step: W4A16,
#            8 samples x 512 tokens, batch 8 (4 x 512 tokens per rank and step), 4 iterations a
#            block, 2 blocks, 1 repeat, no --data_shards run and no KLD (random weights). About
#            5 minutes on an idle 2-core machine.
#
# Usage: bench/ddp_speed.sh [out_dir]     (from the repository root, after building)
# Environment: MODE (4m), REPEATS, ITERS, NSAMPLES, SEQLEN, BATCH, LAYERS (1b: 2), SCHEME (W4A16),
#              ONE2 (1 for 4m, 0 for 1b: also run --data_shards 2), KLD (4m: 1, measure each output's
#              KLD), SR (build/src/signround),
#              SHARED (../shared), PORT (29517), CHUNKS (40, KLD eval), EXTRA (more quantize flags),
#              PAIR (1: also two plain runs side by side, what the machine gives 2 single-thread processes)
set -euo pipefail
OUT=${1:-/tmp/signround-ddp-speed}
SR=${SR:-build/src/signround}
SHARED=${SHARED:-../shared}
MODE=${MODE:-4m}
PORT=${PORT:-29517}
mkdir -p "$OUT"
case "$MODE" in
  4m)
    MODEL=demo/tinystories-llama-4m
    : "${REPEATS:=3}" "${ITERS:=50}" "${NSAMPLES:=32}" "${SEQLEN:=256}" "${BATCH:=8}" "${ONE2:=1}" "${KLD:=1}" ;;
  1b)
    LAYERS=${LAYERS:-2}
    MODEL=$OUT/llama1b-${LAYERS}l
    [ -s "$MODEL/config.json" ] || python3 scripts/make_random_llama.py "$MODEL" --preset llama-3.2-1b --layers "$LAYERS"
    : "${REPEATS:=1}" "${ITERS:=4}" "${NSAMPLES:=8}" "${SEQLEN:=512}" "${BATCH:=8}" "${ONE2:=0}"
    KLD=0 ;;
  *) echo "MODE must be 4m or 1b, got $MODE" >&2; exit 2 ;;
esac
export OMP_NUM_THREADS=1
COMMON="--model $MODEL --dataset $SHARED/data/calib_stories.txt --scheme ${SCHEME:-W4A16} --iters $ITERS \
  --nsamples $NSAMPLES --seqlen $SEQLEN --batch_size $BATCH --threads 1 --quiet --json ${EXTRA:-}"
RUNS="plain ddp"
[ "$ONE2" = 1 ] && RUNS="plain one2 ddp"
lo_tx() { awk '$1 == "lo:" { print $10 }' /proc/net/dev; }
TIMEFORMAT='%U %S'
# cpu FILE CMD...: runs CMD, writing its user + system CPU seconds to FILE.
cpu() { local f=$1; shift; { time "$@" ; } 2> >(awk 'END { print $1 + $2 }' > "$f"); }
: > "$OUT/runs.txt"; : > "$OUT/pair.txt"
for rep in $(seq "$REPEATS"); do
  rm -rf "$OUT"/plain "$OUT"/one2 "$OUT"/ddp "$OUT"/ddp1
  cpu "$OUT/plain.cpu" "$SR" quantize $COMMON --output_dir "$OUT/plain" > "$OUT/plain.json"
  [ "$ONE2" = 1 ] && cpu "$OUT/one2.cpu" "$SR" quantize $COMMON --data_shards 2 --output_dir "$OUT/one2" > "$OUT/one2.json"
  before=$(lo_tx)
  cpu "$OUT/ddp.cpu" "$SR" quantize $COMMON --output_dir "$OUT/ddp" --rank 0 --world_size 2 --master_port "$PORT" \
    > "$OUT/ddp.json" &
  cpu "$OUT/ddp1.cpu" "$SR" quantize $COMMON --output_dir "$OUT/ddp1" --rank 1 --world_size 2 --master_port "$PORT" \
    > /dev/null
  wait
  if [ "${PAIR:-1}" = 1 ]; then  # two independent plain runs at once (below)
    rm -rf "$OUT"/pairA "$OUT"/pairB
    "$SR" quantize $COMMON --output_dir "$OUT/pairA" > "$OUT/pairA.json" &
    "$SR" quantize $COMMON --output_dir "$OUT/pairB" > "$OUT/pairB.json"
    wait
    jq -s -r '"pair \(map([.units[].loop_seconds] | add) | max)"' "$OUT/pairA.json" "$OUT/pairB.json" >> "$OUT/pair.txt"
  fi
  sleep 1  # the CPU figures are written by a process substitution
  lo=$(( $(lo_tx) - before ))
  for m in $RUNS; do
    c=$(cat "$OUT/$m.cpu"); [ "$m" = ddp ] && c="$c/$(cat "$OUT/ddp1.cpu")"
    jq -r --arg m "$m" --arg lo "$lo" --arg c "$c" \
      '"\($m) \([.units[].seconds] | add) \([.units[].loop_seconds] | add) \(.units | length) \(.data_parallel.payload_bytes // 0) \($lo) \(.seconds) \($c)"' \
      "$OUT/$m.json" >> "$OUT/runs.txt"
  done
done
if [ "$ONE2" = 1 ]; then
  cmp -s "$OUT/ddp/model.safetensors" "$OUT/one2/model.safetensors" && same=identical || same=DIFFERENT
  echo "2 ranks vs 1 process with --data_shards 2: model.safetensors $same"
fi
echo "mode $MODE: $(basename "$MODEL"), ${SCHEME:-W4A16}, $NSAMPLES x $SEQLEN tokens, batch $BATCH, $ITERS iterations a block; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| run | processes x threads | best loop s | loop iterations/s | best unit s | unit iterations/s | CPU s per process (last run) | payload bytes/step/rank | loopback bytes/step | KLD to F32 |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for m in $RUNS; do
  kld=-
  [ "$KLD" = 1 ] && kld=$("$SR" eval --model "$OUT/$m" --text "$SHARED/data/tinystories_val.txt" --ctx 256 \
        --chunks "${CHUNKS:-40}" --kld-base "$MODEL" --threads 2 --json --quiet | jq -r '"\(.kld) ± \(.kld_stderr)"')
  awk -v m="$m" -v it="$ITERS" -v kld="$kld" '$1 == m { if (b == 0 || $2 < b) b = $2; if (l == 0 || $3 < l) l = $3;
      u = $4; p = $5; lo = $6; c = $8 }
    END { pt = m == "ddp" ? "2 x 1" : "1 x 1"; steps = it * u;
          printf "| %s | %s | %.2f | %.3f | %.2f | %.3f | %s | %s | %s | %s |\n", m, pt, l, steps / l, b, steps / b, c,
                 m == "ddp" ? sprintf("%.0f", p / steps) : "-", m == "ddp" ? sprintf("%.0f", lo / steps) : "-", kld }' \
    "$OUT/runs.txt"
done
# The ratios of this run: 2 ranks against the plain process (the acceptance figure), by wall time
# of the loop, and by CPU seconds (what 2 idle cores would give if the exchange cost nothing).
awk '$1 == "plain" { if (p == 0 || $3 < p) p = $3; pc = $8 } $1 == "ddp" { if (d == 0 || $3 < d) d = $3; split($8, c, "/"); dc = c[1] > c[2] ? c[1] : c[2] }
  END { printf "\n2 ranks / plain: loop throughput %.2fx; CPU seconds per process %.2fx (plain %s, slower rank %s)\n", p / d, pc / dc, pc, dc }' \
  "$OUT/runs.txt"
# What the machine gives two single-thread processes: two independent plain runs side by side (no
# exchange, nothing shared but the machine: memory bandwidth, the L3 cache, the clock), their summed
# loop throughput against one plain run's, by the slower of the two. Not a ceiling for the ranks:
# each rank streams half the tokens through the same weights, two plain runs the whole batch each.
[ -s "$OUT/pair.txt" ] && awk '$1 == "plain" && FILENAME ~ /runs/ { if (p == 0 || $3 < p) p = $3 }
  $1 == "pair" { if (q == 0 || $2 < q) q = $2 }
  END { printf "2 plain runs side by side / plain: loop throughput %.2fx (slower of the pair: %.2f s)\n", 2 * p / q, q }' \
  "$OUT/runs.txt" "$OUT/pair.txt"
