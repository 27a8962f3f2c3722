#!/usr/bin/env bash
# Quality of bf16 amp tuning against fp32 tuning (issue 17, part 1): SignRoundV2 on the 4m model
# for W2A16G64, W4A16, MXFP4 and gguf:q4_k_m, once with --disable_amp and once with --enable_amp
# (forced: on a CPU without native bf16 the default is fp32), each evaluated against the F32 model
# with llama.cpp's protocol (KLD ± stderr). Writes OUT/table.md.
#   bench/amp_quality.sh [--iters N] [--nsamples N] [--seqlen N] [--schemes "..."] [--out DIR] [--threads N]
set -euo pipefail
cd "$(dirname "$0")/.."
SCHEMES="W2A16G64 W4A16 MXFP4 gguf:q4_k_m"
MODEL=../shared/models/tinystories-llama-4m
ITERS=200; NSAMPLES=128; SEQLEN=256; OUT=bench/out/amp_quality; THREADS=0
while [ $# -gt 0 ]; do
  case "$1" in
    --schemes) SCHEMES="$2"; shift 2;; --iters) ITERS="$2"; shift 2;;
    --nsamples) NSAMPLES="$2"; shift 2;; --seqlen) SEQLEN="$2"; shift 2;;
    --out) OUT="$2"; shift 2;; --threads) THREADS="$2"; shift 2;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
SR=${SIGNROUND:-build/src/signround}
DATA=../shared/data/calib_stories.txt
TEXT=../shared/data/tinystories_val.txt
EVAL="--text $TEXT --ctx 256 --chunks 200 --threads $THREADS --json --quiet"
mkdir -p "$OUT"
for scheme in $SCHEMES; do
  case "$scheme" in gguf:*) what="--format $scheme";; *) what="--scheme $scheme";; esac
  for mode in fp32 amp; do
    flag=$([ $mode = amp ] && echo --enable_amp || echo --disable_amp)
    run="$OUT/${scheme//:/_}-$mode"
    if [ ! -s "$run.eval.json" ]; then
      rm -rf "$run.model" "$run.model.partial"
      $SR quantize --model "$MODEL" $what --iters "$ITERS" $flag --dataset "$DATA" --nsamples "$NSAMPLES" \
        --seqlen "$SEQLEN" --threads "$THREADS" --output_dir "$run.model" --json --quiet > "$run.quant.json"
      target="$run.model"
      case "$scheme" in gguf:*) target=$(ls "$run.model"/*.gguf);; esac
      $SR eval --model "$target" --kld-base "$MODEL" $EVAL > "$run.eval.json"
      rm -rf "$run.model"
    fi
    echo "done: $scheme $mode" >&2
  done
done
python3 - "$OUT" "$SCHEMES" > "$OUT/table.md" <<'PY'
import json, sys
out, schemes = sys.argv[1], sys.argv[2].split()
print("| scheme | compute | PPL | KLD vs F32 | same top % | KLD amp − fp32 (in fp32's stderr) | quantize time |")
print("|---|---|---|---|---|---|---|")
for s in schemes:
    r = {m: (json.load(open(f"{out}/{s.replace(':', '_')}-{m}.quant.json")),
             json.load(open(f"{out}/{s.replace(':', '_')}-{m}.eval.json"))) for m in ("fp32", "amp")}
    for m in ("fp32", "amp"):
        q, e = r[m]
        d = "" if m == "fp32" else f"{(e['kld'] - r['fp32'][1]['kld']) / r['fp32'][1]['kld_stderr']:+.2f}"
        print(f"| {s} | {q['compute_dtype']} | {e['ppl']:.4f} ± {e['ppl_stderr']:.4f} | {e['kld']:.6f} ± "
              f"{e['kld_stderr']:.6f} | {100*e['top1_agreement']:.2f} | {d} | {q['seconds_total']:.1f} s |")
PY
cat "$OUT/table.md"
