#!/usr/bin/env bash
# i-quant acceptance benchmark (issue 16, docs/results-iquants.md): the 4m model quantized to the
# i-quant mixes by llama.cpp (llama-imatrix + llama-quantize --imatrix) and by signround
# (SignRoundV2, the settings of docs/results-gguf.md), every file measured by two llama.cpp builds:
# c392e50's llama-perplexity (--kl-divergence against the F32 file's base logits) and the current
# llama.cpp inside node-llama-cpp (scripts/llama_node/perplexity.mjs, the suite's harness).
#
# Usage: bench/iquant_acceptance.sh [out_dir]            (from the repository root)
# Environment: MIXES (default "iq4_xs iq3_s iq3_xxs iq2_s iq2_xs iq2_xxs"), ITERS (200),
#   NSAMPLES (128), SEQLEN (256), LR (auto), EXTRA (more quantize flags), SR_THREADS (signround's
#   --threads; default: its own, one per core), LLAMA_THREADS (1: the llama.cpp tools' -t; on the
#   shared, oversubscribed 2-core machine ggml's spinning threadpool with -t 2 ran llama-perplexity
#   6x slower than -t 1, same figures), CTX (256), CHUNKS (200), SR (build/src/signround), SHARED (../shared), TAG (a suffix of our
#   file names, for a second setting of the same mix: e.g. TAG=-i400 EXTRA="--iters 400"),
#   NODE_EVAL (1; 0 skips the current llama.cpp, e.g. without node-llama-cpp installed).
# Writes <out>/{llamacpp,signround<TAG>}-<mix>.{gguf,time.txt}, <out>/*.ppl.txt (llama-perplexity),
# <out>/*.node.json (node-llama-cpp), <out>/signround<TAG>-<mix>.run.json and prints the table
# (bench/iquant_table.py). Finished files are kept: a rerun only does what is missing.
set -euo pipefail

OUT=${1:-/tmp/signround-iquant-bench}
SR=${SR:-build/src/signround}
SHARED=${SHARED:-../shared}
MIXES=${MIXES:-"iq4_xs iq3_s iq3_xxs iq2_s iq2_xs iq2_xxs"}
ITERS=${ITERS:-200}
NSAMPLES=${NSAMPLES:-128}
SEQLEN=${SEQLEN:-256}
LR=${LR:-}
EXTRA=${EXTRA:-}
SR_THREADS=${SR_THREADS:-}
LLAMA_THREADS=${LLAMA_THREADS:-1}
CTX=${CTX:-256}
CHUNKS=${CHUNKS:-200}
TAG=${TAG:-}
NODE_EVAL=${NODE_EVAL:-1}
BIN=$SHARED/tools/llama.cpp/bin
MODEL=$SHARED/models/tinystories-llama-4m
# llama.cpp's converter output of the model (../shared/reference/llamacpp/README.md).
F32=$SHARED/reference/llamacpp/tinystories-llama-4m/tinystories-llama-4m-f32.gguf
TEXT=$SHARED/data/tinystories_val.txt
DATA=$SHARED/data/calib_stories.txt
TIME="/usr/bin/time -v"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# llama.cpp's side. llama-imatrix sees the same calibration text and as many tokens as
# signround's calibration (NSAMPLES windows of SEQLEN tokens; signround draws its windows at
# random from the whole text, llama-imatrix takes the first NSAMPLES chunks of SEQLEN tokens).
IMATRIX=$OUT/llamacpp-imatrix.dat
if [ ! -s "$IMATRIX" ]; then
  echo "== llama-imatrix ($NSAMPLES x $SEQLEN tokens of $(basename "$DATA"))" >&2
  $TIME -o "$OUT/llamacpp-imatrix.time.txt" "$BIN/llama-imatrix" -m "$F32" -f "$DATA" -c "$SEQLEN" \
    --chunks "$NSAMPLES" -t "$LLAMA_THREADS" -o "$IMATRIX.tmp" > "$OUT/llamacpp-imatrix.log" 2>&1
  mv "$IMATRIX.tmp" "$IMATRIX"
fi
for mix in $MIXES; do
  base=$OUT/llamacpp-$mix
  if [ ! -s "$base.gguf" ]; then
    echo "== llama-quantize --imatrix $mix" >&2
    $TIME -o "$base.time.txt" "$BIN/llama-quantize" --imatrix "$IMATRIX" "$F32" "$base.gguf.tmp" \
      "${mix^^}" "$LLAMA_THREADS" > "$base.log" 2>&1
    mv "$base.gguf.tmp" "$base.gguf"
  fi
done

# Ours: SignRoundV2 (the default for the GGUF schemes) with docs/results-gguf.md's settings.
for mix in $MIXES; do
  base=$OUT/signround$TAG-$mix
  if [ ! -s "$base.gguf" ]; then
    echo "== signround quantize $mix $EXTRA" >&2
    $TIME -o "$base.time.txt" "$SR" quantize --quiet --json --model "$MODEL" --format "gguf:$mix" \
      --iters "$ITERS" --nsamples "$NSAMPLES" --seqlen "$SEQLEN" --dataset "$DATA" \
      ${SR_THREADS:+--threads $SR_THREADS} ${LR:+--lr $LR} $EXTRA --output_dir "$base.gguf" > "$base.run.json"
  fi
done

# c392e50's llama-perplexity: the F32 file's logits once, then each file against them.
KLD_BASE=$OUT/f32.kld
if [ ! -s "$KLD_BASE" ]; then
  echo "== llama-perplexity base (F32)" >&2
  "$BIN/llama-perplexity" -m "$F32" -f "$TEXT" -c "$CTX" --chunks "$CHUNKS" -t "$LLAMA_THREADS" \
    --kl-divergence-base "$KLD_BASE.tmp" > "$OUT/f32.ppl.txt" 2>&1
  mv "$KLD_BASE.tmp" "$KLD_BASE"
fi
files=()
for mix in $MIXES; do
  for side in llamacpp "signround$TAG"; do
    f=$OUT/$side-$mix.gguf
    files+=("$f")
    if [ ! -s "${f%.gguf}.ppl.txt" ]; then
      echo "== llama-perplexity $side $mix" >&2
      "$BIN/llama-perplexity" -m "$f" -c "$CTX" -t "$LLAMA_THREADS" --kl-divergence-base "$KLD_BASE" --kl-divergence \
        > "${f%.gguf}.ppl.txt.tmp" 2>&1
      mv "${f%.gguf}.ppl.txt.tmp" "${f%.gguf}.ppl.txt"
    fi
  done
done

# The current llama.cpp (node-llama-cpp), same protocol, KLD from both full distributions.
if [ "$NODE_EVAL" = 1 ]; then
  todo=()
  for f in "${files[@]}"; do [ -s "${f%.gguf}.node.json" ] || todo+=("$f"); done
  if [ ${#todo[@]} -gt 0 ]; then
    echo "== node-llama-cpp on ${#todo[@]} files" >&2
    args=()
    for f in "${todo[@]}"; do args+=(--model "$f"); done
    tmp=$OUT/node.$$.jsonl  # one per process: streams of other MIXES may share OUT
    node scripts/llama_node/perplexity.mjs "${args[@]}" --text "$TEXT" --ctx "$CTX" --chunks "$CHUNKS" \
      --threads "$LLAMA_THREADS" --base "$F32" > "$tmp"
    # One JSON line per model: each goes beside its file (by its "model" field).
    python3 -c 'import json, sys
for line in open(sys.argv[1]):
    if line.startswith("{"):
        path = json.loads(line)["model"]
        open(path[: -len(".gguf")] + ".node.json", "w").write(line)' "$tmp"
    rm -f "$tmp"
  fi
fi

python3 bench/iquant_table.py "$OUT" $MIXES
