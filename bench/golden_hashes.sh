#!/usr/bin/env bash
# Fixed runs on the 4m demo model whose output files must not change across refactors
# (issue 12). Prints "sha256  run/file" for every output file, sorted; diff two listings.
#   bench/golden_hashes.sh [SIGNROUND_BINARY] [WORK_DIR] > hashes.txt
# Short runs (--iters 20 --nsamples 16 --seqlen 128), one thread, fixed seed, fp32 compute
# (--disable_amp: the default, bf16 amp where the CPU has it, would make the set machine-specific).
# Run records (signround_run.json: timings) and the HTML report are left out, and the autoscheme records are
# hashed without their seconds and memory figures: those change from run to run.
set -euo pipefail
cd "$(dirname "$0")/.."
SR=${1:-build/src/signround}
W=${2:-$(mktemp -d)}
M=demo/tinystories-llama-4m
C="--dataset demo/calib.txt --nsamples 16 --seqlen 128 --threads 1 --seed 42 --quiet --disable_amp"
q() { local name=$1; shift; "$SR" quantize --model $M $C --output_dir "$W/$name" "$@" >/dev/null; }
for s in W2A16G64 W4A16 MXFP4 NVFP4; do
  q rtn-$s --scheme $s --iters 0 --disable_opt_rtn
  q optrtn-$s --scheme $s --iters 0
  q v2-$s --scheme $s --iters 20
done
q gguf-q4km-rtn --format gguf:q4_k_m --iters 0 --disable_opt_rtn
q gguf-q4km-v2 --format gguf:q4_k_m --iters 20
q gguf-q2ks-rtn --format gguf:q2_k_s --iters 0 --disable_opt_rtn
q gguf-q2ks-v2 --format gguf:q2_k_s --iters 20
q autoround --scheme W4A16 --iters 20 --format auto_round
q gptq --scheme W4A16 --iters 20 --format auto_gptq
"$SR" autoscheme --model $M --dataset demo/calib.txt --nsamples 16 --seqlen 128 --threads 1 --seed 42 --quiet \
  --disable_amp --avg_bits 4.5,5 --options MXFP4,MXFP8 --measure_kld --refine 1 --measure_encoder opt_rtn \
  --score-cache none --output_dir "$W/autoscheme" --json | jq -S 'del(.. | .seconds?, .peak_rss_bytes?)' > "$W/autoscheme.json"
"$SR" eval --model "$W/v2-W4A16" --text demo/stories.txt --ctx 128 --chunks 8 --threads 1 \
  --kld-base $M --json | jq -S 'del(.. | .seconds?, .tokens_per_second?, .model?, .kld_base?)' > "$W/eval.json"
jq -S 'del(.. | .seconds?, .peak_rss_bytes?, .seconds_total?)' "$W/autoscheme/autoscheme.json" > "$W/autoscheme/a.tmp"
mv "$W/autoscheme/a.tmp" "$W/autoscheme/autoscheme.json"
cd "$W"
find . -type f ! -name 'signround_run.json' ! -name '.signround-output' ! -name 'run.json' ! -name '*.html' ! -path '*.partial*' -print0 | sort -z | xargs -0 sha256sum
