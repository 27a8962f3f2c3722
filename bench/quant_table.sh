#!/usr/bin/env bash
# Quantize a model with several schemes x methods and tabulate bits/weight,
# perplexity, KL divergence to the source, tuning time and peak memory.
#
#   bench/quant_table.sh [--schemes "W4A16 W2A16G64 ..."] [--methods "rtn opt_rtn v1 v2"]
#                        [--model demo/tinystories-llama-4m] [--iters 200] [--nsamples 128]
#                        [--seqlen 512] [--out bench/out/quant_table]
#
# Calibration: ../shared/data/calib_stories.txt; evaluation: ../shared/data/tinystories_val.txt
# with --protocol llamacpp --ctx 256 --chunks 200 (llama.cpp's reference protocol).
# Writes <out>/table.md and one JSON per run; needs python3 for the table.
set -euo pipefail
cd "$(dirname "$0")/.."
SCHEMES="W2A16G64 W2A16 W3A16 W4A16 MXFP4 MXFP8 NVFP4"
METHODS="rtn opt_rtn v1 v2"
MODEL=demo/tinystories-llama-4m
ITERS=200; NSAMPLES=128; SEQLEN=512; OUT=bench/out/quant_table; THREADS=0
while [ $# -gt 0 ]; do
  case "$1" in
    --schemes) SCHEMES="$2"; shift 2;; --methods) METHODS="$2"; shift 2;;
    --model) MODEL="$2"; shift 2;; --iters) ITERS="$2"; shift 2;;
    --nsamples) NSAMPLES="$2"; shift 2;; --seqlen) SEQLEN="$2"; shift 2;;
    --out) OUT="$2"; shift 2;; --threads) THREADS="$2"; shift 2;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
SR=${SIGNROUND:-build/src/signround}
DATA=../shared/data/calib_stories.txt
TEXT=../shared/data/tinystories_val.txt
mkdir -p "$OUT"
for scheme in $SCHEMES; do
  for method in $METHODS; do
    case "$method" in
      rtn) flags="--iters 0 --disable_opt_rtn";;
      opt_rtn) flags="--iters 0";;
      v1) flags="--iters $ITERS --disable_alg_ext";;
      v2) flags="--iters $ITERS";;
      *) echo "unknown method $method" >&2; exit 2;;
    esac
    run="$OUT/$scheme-$method"
    if [ ! -s "$run.eval.json" ]; then
      rm -rf "$run.model" "$run.model.partial"
      $SR quantize --model "$MODEL" --scheme "$scheme" $flags --dataset "$DATA" --nsamples "$NSAMPLES" \
        --seqlen "$SEQLEN" --threads "$THREADS" --output_dir "$run.model" --json > "$run.quant.json"
      $SR eval --model "$run.model" --text "$TEXT" --ctx 256 --chunks 200 --kld-base "$MODEL" \
        --threads "$THREADS" --json --quiet > "$run.eval.json"
      rm -rf "$run.model"
    fi
    echo "done: $scheme $method" >&2
  done
done
base_json="$OUT/base.eval.json"
[ -f "$base_json" ] || $SR eval --model "$MODEL" --text "$TEXT" --ctx 256 --chunks 200 --threads "$THREADS" --json --quiet > "$base_json"
python3 - "$OUT" "$SCHEMES" "$METHODS" "$base_json" > "$OUT/table.md" <<'PY'
import json, sys
out, schemes, methods, base = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), json.load(open(sys.argv[4]))
print(f"F32: PPL {base['ppl']:.4f} ± {base['ppl_stderr']:.4f}\n")
print("| scheme | method | bits/weight | PPL | KLD vs F32 | same top % | quantize time | peak memory |")
print("|---|---|---|---|---|---|---|---|")
for s in schemes:
    for m in methods:
        q = json.load(open(f"{out}/{s}-{m}.quant.json")); e = json.load(open(f"{out}/{s}-{m}.eval.json"))
        print(f"| {s} | {m} | {q['average_bits']:.3f} | {e['ppl']:.4f} ± {e['ppl_stderr']:.4f} | "
              f"{e['kld']:.6f} ± {e['kld_stderr']:.6f} | {100*e['top1_agreement']:.2f} | "
              f"{q['seconds_total']:.1f} s | {q['peak_rss_bytes']/2**20:.0f} MiB |")
PY
cat "$OUT/table.md"
