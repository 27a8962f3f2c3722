#!/usr/bin/env bash
# The per-tensor types llama-quantize (../shared/tools/llama.cpp, c392e50) gives the 4m model for
# each i-quant mix, with llama-imatrix's imatrix (40 kB of calib_stories.txt, 8 chunks of 128)
# and without: the table pinned in tests/export/gguf_iquant_plan_test.cpp (kLlamaQuantize4m).
# Usage: bench/iquant_mix_types.sh [workdir]   (about 2 minutes; IQ1_S alone takes ~30 s)
set -euo pipefail
shared=$(cd "$(dirname "$0")/../../shared" && pwd)
bin=$shared/tools/llama.cpp/bin
f32=$shared/reference/llamacpp/tinystories-llama-4m/tinystories-llama-4m-f32.gguf
work=${1:-$(mktemp -d)}
mkdir -p "$work"
head -c 40000 "$shared/data/calib_stories.txt" > "$work/calib.txt"
"$bin/llama-imatrix" -m "$f32" -f "$work/calib.txt" -c 128 --chunks 8 -t 2 -o "$work/llama.dat" > "$work/imatrix.log" 2>&1
for mix in IQ1_S IQ1_M IQ2_XXS IQ2_XS IQ2_S IQ2_M IQ3_XXS IQ3_XS IQ3_S IQ3_M IQ4_NL IQ4_XS; do
  for im in with without; do
    args=(); [ $im = with ] && args=(--imatrix "$work/llama.dat")
    log=$work/$mix-$im.log
    if "$bin/llama-quantize" "${args[@]}" "$f32" "$work/$mix-$im.gguf" $mix 2 > "$log" 2>&1; then
      # "[  4/ 39]  blk.0.attn_k.weight - [...], type = f32, [did not find...] converting to iq2_xxs"
      types=$(tr '\n' ' ' < "$log" | grep -o '\] *[a-z_.0-9]*\.weight - \[[^]]*\], type = *[a-z0-9_A-Z]*,[^[]*' |
              sed -E 's/\] *([^ ]*) - .*type = *([a-z0-9_A-Z]+),.*converting to ([a-z0-9_A-Z]+).*/\1=\3/; s/\] *([^ ]*) - .*type = *([a-z0-9_A-Z]+).*/\1=\2/')
      echo "$mix $im imatrix: $(echo $types)"
    else
      echo "$mix $im imatrix: refused: $(grep -m1 -E 'Please do not use|Missing importance matrix' "$log")"
    fi
  done
done
