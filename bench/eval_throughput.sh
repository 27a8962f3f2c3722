#!/usr/bin/env bash
# Evaluation throughput of the 4m model at ctx 256 (200 chunks of tinystories_val.txt,
# 2 threads), from its HF folder and from llama.cpp's F32 GGUF, beside llama.cpp's own
# llama-perplexity figure on the same GGUF (~4,900-5,000 tokens/s on a 2-core machine,
# ../shared/reference/llamacpp/README.md). Best of 3 runs each.
#   bench/eval_throughput.sh [threads=2]
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-2}
LLAMA=4950
echo "| model file | PPL | tokens/s (best of 3) | vs llama.cpp (${LLAMA} tokens/s) |"
echo "|---|---|---|---|"
for m in demo/tinystories-llama-4m ../shared/reference/llamacpp/tinystories-llama-4m/tinystories-llama-4m-f32.gguf; do
  best=0; ppl=0
  for i in 1 2 3; do
    out=$(build/src/signround eval --model "$m" --text ../shared/data/tinystories_val.txt --ctx 256 --chunks 200 \
          --threads "$T" --json --quiet)
    tps=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_second"])')
    ppl=$(echo "$out" | python3 -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["ppl"])')
    best=$(python3 -c "print(max($best, $tps))")
  done
  python3 -c "print(f'| $m | $ppl | {$best:.0f} | {$best/$LLAMA:.2f}x |')"
done
