#!/usr/bin/env bash
# Real-shape timing on a random-weight Llama-3.2-1B-shaped model (docs/results-scale.md, "memory
# and real shapes"), all in one run so that the machine's load is shared alike:
#   1. the model (scripts/make_random_llama.py --preset llama-3.2-1b: BF16, tied, 2 shards) and
#      its F16 GGUF written by signround (gguf:f16), so both tools start from the same weights;
#   2. llama.cpp: llama-imatrix (NSAMPLES chunks of SEQLEN tokens of the calibration text) then
#      llama-quantize --imatrix ... Q4_K_M, on the F16 GGUF;
#   3. signround quantize --iters 0 --format gguf:q4_k_m with NSAMPLES x SEQLEN calibration tokens;
#   4. SignRoundV2 per-block time at the defaults (200 iters) and at --recipe light (50 iters),
#      measured on a 1-block model of the same shape at TUNE_ITERS iterations and extrapolated
#      (per-iteration time x iters + the block's fixed work, x 16 blocks): printed as extrapolated;
#   5. DeltaLoss scoring of one option (W4A16) on DL_NSAMPLES x 256 tokens (autoscheme).
# Prints one markdown table; wall time and peak RSS from /usr/bin/time -v.
#
# Usage: bench/scale_1b.sh [out_dir=/tmp/scale]   (from the repository root, after building)
# Environment: NSAMPLES (32), SEQLEN (512), THREADS (2), TUNE_ITERS (2), TUNE_NSAMPLES (16),
#   TUNE_SEQLEN (2048), DL_NSAMPLES (4), SKIP_TUNE (0; 1: steps 1-3 only), SR (build/src/signround), LLAMA (../shared/tools/llama.cpp/bin).
set -euo pipefail
OUT=${1:-/tmp/scale}
SR=${SR:-build/src/signround}
LLAMA=${LLAMA:-../shared/tools/llama.cpp/bin}
DATA=${SHARED:-../shared}/data/calib_stories.txt
NSAMPLES=${NSAMPLES:-32}; SEQLEN=${SEQLEN:-512}; THREADS=${THREADS:-2}
TUNE_ITERS=${TUNE_ITERS:-2}; TUNE_NSAMPLES=${TUNE_NSAMPLES:-16}; TUNE_SEQLEN=${TUNE_SEQLEN:-2048}
DL_NSAMPLES=${DL_NSAMPLES:-4}
M=$OUT/llama1b; M1=$OUT/llama1b-1block
mkdir -p "$OUT"
[ -s "$M/config.json" ] || python3 scripts/make_random_llama.py "$M" --preset llama-3.2-1b
[ -s "$M1/config.json" ] || python3 scripts/make_random_llama.py "$M1" --preset llama-3.2-1b --layers 1

# timed <name> <command...>: runs it under /usr/bin/time -v; keeps <name>.time and <name>.err.
timed() {
  local name=$1; shift
  /usr/bin/time -v -o "$OUT/$name.time" "$@" > "$OUT/$name.out" 2> "$OUT/$name.err" ||
    { echo "$name failed:" >&2; tail -5 "$OUT/$name.err" >&2; exit 1; }
}
wall() { awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.1f", s}' "$OUT/$1.time"; }
rss() { awk -F': ' '/Maximum resident set size/ {printf "%.2f", $2 / 1048576}' "$OUT/$1.time"; }

rm -rf "$OUT/f16" "$OUT/f16.partial"
timed f16 "$SR" quantize --quiet --model "$M" --format gguf:f16 --output_dir "$OUT/f16" --threads "$THREADS"
F16=$(ls "$OUT"/f16/*.gguf)
timed imatrix "$LLAMA/llama-imatrix" -m "$F16" -f "$DATA" -c "$SEQLEN" --chunks "$NSAMPLES" -t "$THREADS" \
  -o "$OUT/imatrix.dat"
timed lquant "$LLAMA/llama-quantize" --imatrix "$OUT/imatrix.dat" "$F16" "$OUT/llama-q4_k_m.gguf" Q4_K_M "$THREADS"
rm -rf "$OUT/sr" "$OUT/sr.partial"
timed sr "$SR" quantize --json --model "$M" --iters 0 --format gguf:q4_k_m --dataset "$DATA" \
  --nsamples "$NSAMPLES" --seqlen "$SEQLEN" --output_dir "$OUT/sr" --threads "$THREADS"
# Tuning: one block at TUNE_ITERS and at 1 iteration (the difference is the per-iteration time).
for it in 1 "$TUNE_ITERS"; do
  [ "${SKIP_TUNE:-0}" = 1 ] && break
  rm -rf "$OUT/tune$it" "$OUT/tune$it.partial"
  timed "tune$it" "$SR" quantize --json --model "$M1" --iters "$it" --format gguf:q4_k_m --dataset "$DATA" \
    --nsamples "$TUNE_NSAMPLES" --seqlen "$TUNE_SEQLEN" --output_dir "$OUT/tune$it" --threads "$THREADS"
done
# DeltaLoss: one option (W4A16) scored on DL_NSAMPLES x 256 tokens (autoscheme's seqlen).
[ "${SKIP_TUNE:-0}" = 1 ] || timed deltaloss "$SR" autoscheme --json --model "$M" --options W4A16 --avg-bits 5 --dataset "$DATA" \
  --nsamples "$DL_NSAMPLES" --seqlen 256 --score-cache none --output-dir "$OUT/autoscheme" --threads "$THREADS"
rm -f "$OUT/llama-q4_k_m.gguf"; rm -rf "$OUT/sr" "$OUT"/tune*/

[ "${SKIP_TUNE:-0}" = 1 ] && { echo "| step | wall | peak RSS |"; echo "|---|---|---|"
  for s in f16 imatrix lquant sr; do echo "| $s | $(wall $s) s | $(rss $s) GiB |"; done; exit 0; }
python3 - "$OUT" "$TUNE_ITERS" "$NSAMPLES" "$SEQLEN" "$TUNE_NSAMPLES" "$TUNE_SEQLEN" \
  "$(wall f16)" "$(rss f16)" "$(wall imatrix)" "$(rss imatrix)" "$(wall lquant)" "$(rss lquant)" "$(wall sr)" "$(rss sr)" \
  "$(wall tune1)" "$(wall tune$TUNE_ITERS)" "$(rss tune$TUNE_ITERS)" "$(wall deltaloss)" "$(rss deltaloss)" "$DL_NSAMPLES" <<'PY'
import json, sys
out, iters, ns, sl, tns, tsl = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
f16, f16r, im, imr, lq, lqr, sr, srr, t1, tk, tkr, dl, dlr, dln = sys.argv[7:21]
blocks = 16
def unit(name):
    return json.load(open(f"{out}/{name}.out"))["units"][0]
u1, uk = unit("tune1"), unit(f"tune{iters}")
per_iter = (uk["seconds"] - u1["seconds"]) / max(iters - 1, 1)
fixed = u1["seconds"] - per_iter           # init-scale search, encode: once per block
passes = uk["seconds_total"] - uk["seconds"]  # the FP pass + the quantized pass over TUNE_NSAMPLES samples
print(f"| step | wall | peak RSS |\n|---|---|---|")
print(f"| signround gguf:f16 (the shared starting point) | {f16} s | {f16r} GiB |")
print(f"| llama-imatrix, {ns} x {sl} tokens | {im} s | {imr} GiB |")
print(f"| llama-quantize Q4_K_M --imatrix | {lq} s | {lqr} GiB |")
print(f"| **llama.cpp total** | **{float(im) + float(lq):.1f} s** | |")
print(f"| **signround --iters 0 gguf:q4_k_m**, {ns} x {sl} tokens | **{sr} s** | {srr} GiB |")
print(f"| ratio signround / llama.cpp | {float(sr) / (float(im) + float(lq)):.2f} | |")
print()
print(f"Tuning, one block of the 1B shape, batch 8 x {tsl} tokens ({tns} samples cached): "
      f"{per_iter:.1f} s per iteration, {fixed:.1f} s fixed per block, caching passes {passes:.1f} s; peak RSS {tkr} GiB.")
for name, n in (("defaults", 200), ("light", 50)):
    blk = fixed + n * per_iter + passes * 128 / tns
    print(f"- **extrapolated** {name} ({n} iters, 128 x {tsl} tokens): {blk / 60:.1f} min per block, "
          f"{blk * blocks / 3600:.1f} h for {blocks} blocks")
dls = json.load(open(f"{out}/deltaloss.out")).get("scoring_seconds", float("nan"))
print(f"\nDeltaLoss, one option (W4A16), {dln} x 256 tokens: scoring {dls:.1f} s (process {dl} s, peak RSS {dlr} GiB).")
PY
