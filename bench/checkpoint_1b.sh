#!/usr/bin/env bash
# Llama-3.2-1B-shaped tuning (docs/results-scale.md, "Tuning at the 1B shape"): a random-weight
# 1-block model of that shape (scripts/make_random_llama.py --preset llama-3.2-1b --layers 1; its
# vocabulary cut to VOCAB rows so that the export after the block costs nothing: the block is the
# same), tuned with signround quantize --format gguf:q4_k_m (SignRoundV2):
#   mem:  peak RSS with --checkpoint off and on at MEM_NSAMPLES x MEM_SEQLEN tokens, batch
#         MEM_BATCH, MEM_ITERS iterations (default 2 x 2048, batch 2, 1 iteration);
#   time: ITERS iterations at the defaults' step (batch 8 x 2048 tokens; --checkpoint auto) on
#         NSAMPLES cached samples: per-iteration time (the loop's seconds / ITERS), the block's fixed
#         work (V2 scale search, encoding) and the two passes over the cached samples, then
#         extrapolated, and printed as extrapolated, to the defaults (200 iterations, 128 x 2048
#         tokens) and --recipe light (50 iterations, lr 5e-3, same samples and batch), x 16 blocks.
#   eta:  the progress lines' ETA against the time the blocks really took, on an ETA_BLOCKS-block
#         model of the same shape (ETA_ITERS iterations, ETA_NSAMPLES x ETA_SEQLEN tokens, batch
#         ETA_BATCH): for each line with an ETA, when it was printed, what it predicted and the error.
# Each run's stderr is kept, timestamped (seconds since its start), in OUT/<run>.progress.
# Usage: bench/checkpoint_1b.sh [out_dir=/tmp/ckpt-1b] [mem|time|eta|all=all]   (from the repository root)
# Environment: THREADS (2), VOCAB (1024), ITERS (2), NSAMPLES (8), MEM_* above, ETA_BLOCKS (4),
#   ETA_ITERS (4), ETA_NSAMPLES (8), ETA_SEQLEN (512), ETA_BATCH (8), ETA_MODEL (another model for
#   the eta run, e.g. ../shared/models/tinystories-llama-4m with ETA_BLOCKS its depth), SR (build/src/signround).
set -euo pipefail
OUT=${1:-/tmp/ckpt-1b}; WHAT=${2:-all}
SR=${SR:-build/src/signround}
DATA=${SHARED:-../shared}/data/calib_stories.txt
THREADS=${THREADS:-2}; VOCAB=${VOCAB:-1024}; ITERS=${ITERS:-2}; NSAMPLES=${NSAMPLES:-8}
MEM_NSAMPLES=${MEM_NSAMPLES:-2}; MEM_SEQLEN=${MEM_SEQLEN:-2048}; MEM_BATCH=${MEM_BATCH:-2}; MEM_ITERS=${MEM_ITERS:-1}
ETA_BLOCKS=${ETA_BLOCKS:-4}; ETA_ITERS=${ETA_ITERS:-4}; ETA_NSAMPLES=${ETA_NSAMPLES:-8}; ETA_SEQLEN=${ETA_SEQLEN:-512}
ETA_BATCH=${ETA_BATCH:-8}
M1=$OUT/llama1b-1block; MN=${ETA_MODEL:-$OUT/llama1b-${ETA_BLOCKS}block}; M=$M1
mkdir -p "$OUT"
[ -s "$M1/config.json" ] || python3 scripts/make_random_llama.py "$M1" --preset llama-3.2-1b --layers 1 --vocab "$VOCAB" >/dev/null

# run <name> <flags...>: one quantize run under /usr/bin/time -v, its JSON record in <name>.json,
# its stderr timestamped (seconds since the start) in <name>.progress.
run() {
  local name=$1; shift
  rm -rf "$OUT/$name.q" "$OUT/$name.q.partial"
  local t0; t0=$(date +%s.%N)
  /usr/bin/time -v -o "$OUT/$name.time" "$SR" quantize --json --model "$M" --format gguf:q4_k_m --dataset "$DATA" \
    --output_dir "$OUT/$name.q" --threads "$THREADS" "$@" > "$OUT/$name.json" \
    2> >(while IFS= read -r line; do printf '%s  %s\n' "$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%8.1f", a - b }')" "$line"; done > "$OUT/$name.progress") ||
    { echo "$name failed:" >&2; tail -5 "$OUT/$name.progress" >&2; exit 1; }
  rm -rf "$OUT/$name.q"
}
rss() { awk -F': ' '/Maximum resident set size/ {printf "%.2f", $2 / 1048576}' "$OUT/$1.time"; }

if [ "$WHAT" = all ] || [ "$WHAT" = mem ]; then
  for mode in off on; do
    run "mem-$mode" --iters "$MEM_ITERS" --nsamples "$MEM_NSAMPLES" --seqlen "$MEM_SEQLEN" --batch_size "$MEM_BATCH" \
      --checkpoint "$mode"
  done
  python3 - "$OUT" "$(rss mem-off)" "$(rss mem-on)" "$MEM_NSAMPLES" "$MEM_SEQLEN" "$MEM_BATCH" "$MEM_ITERS" <<'PY'
import json, sys
out, off_rss, on_rss, n, t, b, it = sys.argv[1:]
rec = {m: json.load(open(f"{out}/mem-{m}.json")) for m in ("off", "on")}
print(f"| --checkpoint | peak RSS (time -v) | peak RSS (record, before export) | s per iteration | block loss best |")
print("|---|---|---|---|---|")
for m, r in (("off", off_rss), ("on", on_rss)):
    u = rec[m]["units"][0]
    print(f"| {m} | {r} GiB | {rec[m]['peak_rss_bytes'] / 2**30:.2f} GiB | {u['loop_seconds'] / int(it):.1f} | {u['loss_best']!r} |")
print(f"\n1 block of the Llama-3.2-1B shape, {n} x {t} tokens cached, batch {b}, {it} iteration(s); "
      f"same best loss: {rec['off']['units'][0]['loss_best'] == rec['on']['units'][0]['loss_best']}")
PY
fi

if [ "$WHAT" = all ] || [ "$WHAT" = time ]; then
  run time --iters "$ITERS" --nsamples "$NSAMPLES" --seqlen 2048 --batch_size 8
  python3 - "$OUT" "$ITERS" "$NSAMPLES" "$(rss time)" <<'PY'
import json, sys
out, iters, ns, rss = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
r = json.load(open(f"{out}/time.json")); u = r["units"][0]
per_iter = u["loop_seconds"] / iters
fixed = u["seconds"] - u["loop_seconds"]            # V2 scale search, encoding: once per block
passes = u["seconds_total"] - u["seconds"]          # load, FP pass and quantized pass over ns samples
print(f"Measured (1 block, batch 8 x 2048 tokens, {ns} samples cached, {iters} iterations, checkpoint "
      f"{r.get('checkpoint')}): {per_iter:.1f} s per iteration, {fixed:.1f} s fixed per block, "
      f"{passes:.1f} s for the passes over {ns} samples; whole run {r['seconds']:.1f} s, peak RSS {rss} GiB.")
for name, n in (("defaults", 200), ("--recipe light", 50)):
    blk = fixed + n * per_iter + passes * 128 / ns
    print(f"- **extrapolated** {name} ({n} iterations, 128 x 2048 tokens): {blk / 60:.1f} min per block, "
          f"{blk * 16 / 3600:.1f} h for 16 blocks")
PY
fi

if [ "$WHAT" = all ] || [ "$WHAT" = eta ]; then
  [ -s "$MN/config.json" ] ||
    python3 scripts/make_random_llama.py "$MN" --preset llama-3.2-1b --layers "$ETA_BLOCKS" --vocab "$VOCAB" >/dev/null
  M=$MN run eta --iters "$ETA_ITERS" --nsamples "$ETA_NSAMPLES" --seqlen "$ETA_SEQLEN" --batch_size "$ETA_BATCH"
  python3 - "$OUT/eta.progress" "$ETA_BLOCKS" <<'PY'
import re, sys
lines = [l.rstrip("\n") for l in open(sys.argv[1])]
def secs(d):
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:([\d.]+)s)?", d)
    h, mi, s = m.groups()
    return int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)
end = max(float(l.split()[0]) for l in lines if re.search(rf"block {sys.argv[2]}/{sys.argv[2]}  ", l))
print("| printed at | line | predicted end of the blocks | error |\n|---|---|---|---|")
for l in lines:
    m = re.search(r"(\S+) for the blocks", l)
    if not m: continue
    t = float(l.split()[0]); pred = t + secs(m.group(1))
    print(f"| {t:.0f} s | `{l.split(None, 1)[1][:60]}` | {pred:.0f} s | {100 * (pred - end) / (end - t):+.0f} % of the time left |")
print(f"\nThe blocks ended at {end:.0f} s.")
PY
fi
