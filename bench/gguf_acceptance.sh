#!/usr/bin/env bash
# GGUF acceptance benchmark (docs/results-gguf.md): the 4m model quantized to GGUF mixes with
# SignRoundV2 (and, for comparison, with llama.cpp's own encoders through signround: RTN = its
# ref encoder, opt-RTN = its imatrix encoder with our calibration imatrix), each file evaluated
# with llama.cpp's perplexity protocol against the F32 model, next to llama.cpp's own files
# evaluated by the same code.
#
# Usage: bench/gguf_acceptance.sh [out_dir]            (from the repository root)
# Environment: MIXES (default "q2_k_s q3_k_m q4_k_m q4_0"), ITERS (200), NSAMPLES (128),
#   SEQLEN (512; the model's context), LR (auto), EXTRA (more quantize flags), METHODS
#   (default "signround optrtn rtn"), SR (build/src/signround), SHARED (../shared).
# Writes <out>/<method>-<mix>.{gguf,run.json,eval.json,time.txt}, <out>/llamacpp-<TYPE>.eval.json
# and prints the table (bench/gguf_table.py).
set -euo pipefail

OUT=${1:-/tmp/signround-gguf-bench}
SR=${SR:-build/src/signround}
SHARED=${SHARED:-../shared}
MIXES=${MIXES:-"q2_k_s q3_k_m q4_k_m q4_0"}
METHODS=${METHODS:-"signround optrtn rtn"}
ITERS=${ITERS:-200}
NSAMPLES=${NSAMPLES:-128}
SEQLEN=${SEQLEN:-512}
LR=${LR:-}
EXTRA=${EXTRA:-}
MODEL=$SHARED/models/tinystories-llama-4m
REF=$SHARED/reference/llamacpp/tinystories-llama-4m
F32=$REF/tinystories-llama-4m-f32.gguf
TEXT=$SHARED/data/tinystories_val.txt
DATA=$SHARED/data/calib_stories.txt
mkdir -p "$OUT"

evaluate() {  # evaluate <model> <json out>
  [ -s "$2" ] && return 0
  "$SR" eval --quiet --json --protocol llamacpp --ctx 256 --chunks 200 --text "$TEXT" --kld-base "$F32" \
    --model "$1" > "$2.tmp" && mv "$2.tmp" "$2"
}

for mix in $MIXES; do
  for method in $METHODS; do
    case $method in
      signround) flags="--iters $ITERS --nsamples $NSAMPLES --seqlen $SEQLEN --dataset $DATA ${LR:+--lr $LR} $EXTRA" ;;
      optrtn)    flags="--iters 0 --nsamples $NSAMPLES --seqlen $SEQLEN --dataset $DATA" ;;
      rtn)       flags="--iters 0 --disable_opt_rtn" ;;
      *) echo "unknown method $method" >&2; exit 2 ;;
    esac
    base="$OUT/$method-$mix"
    if [ ! -s "$base.gguf" ]; then
      echo "== quantize $method $mix" >&2
      /usr/bin/time -f "%e s wall, %M KB max RSS" -o "$base.time.txt" \
        "$SR" quantize --quiet --json --model "$MODEL" --format "gguf:$mix" $flags --output_dir "$base.gguf" \
        > "$base.run.json"
    fi
    echo "== eval $method $mix" >&2
    evaluate "$base.gguf" "$base.eval.json"
  done
done

# llama.cpp's own files (no imatrix), evaluated by the same code for a like-with-like KLD.
for t in Q2_K Q3_K_M Q4_K_M Q4_0; do
  echo "== eval llama.cpp $t" >&2
  evaluate "$REF/tinystories-llama-4m-$t.gguf" "$OUT/llamacpp-$t.eval.json"
done

python3 bench/gguf_table.py "$OUT" "$REF/figures.json"
