#!/usr/bin/env bash
# Wall time of the fixed runs of bench/golden_hashes.sh (the 22 quantize runs, autoscheme and
# eval on the 4m demo model, one thread each) under two signround binaries, run back to back
# per case and in alternating order (A B, then B A, ...), so that load on a shared machine
# falls on both alike. Prints seconds per case and the totals; "ratio" is B / A.
#   bench/compare_binaries.sh OLD_BINARY NEW_BINARY [REPEATS]
# Used for issue 12's "no slower": OLD built from 5fe1192 (before the redesign), NEW from main.
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:?usage: bench/compare_binaries.sh OLD_BINARY NEW_BINARY [REPEATS]}
B=${2:?usage: bench/compare_binaries.sh OLD_BINARY NEW_BINARY [REPEATS]}
R=${3:-1}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
M=demo/tinystories-llama-4m
C="--dataset demo/calib.txt --nsamples 16 --seqlen 128 --threads 1 --seed 42 --quiet"
cases=()
for s in W2A16G64 W4A16 MXFP4 NVFP4; do
  cases+=("rtn-$s|quantize --model $M $C --scheme $s --iters 0 --disable_opt_rtn")
  cases+=("optrtn-$s|quantize --model $M $C --scheme $s --iters 0")
  cases+=("v2-$s|quantize --model $M $C --scheme $s --iters 20")
done
cases+=("gguf-q4km-rtn|quantize --model $M $C --format gguf:q4_k_m --iters 0 --disable_opt_rtn")
cases+=("gguf-q4km-v2|quantize --model $M $C --format gguf:q4_k_m --iters 20")
cases+=("gguf-q2ks-rtn|quantize --model $M $C --format gguf:q2_k_s --iters 0 --disable_opt_rtn")
cases+=("gguf-q2ks-v2|quantize --model $M $C --format gguf:q2_k_s --iters 20")
cases+=("autoround|quantize --model $M $C --scheme W4A16 --iters 20 --format auto_round")
cases+=("gptq|quantize --model $M $C --scheme W4A16 --iters 20 --format auto_gptq")
cases+=("autoscheme|autoscheme --model $M $C --avg_bits 4.5,5 --options MXFP4,MXFP8 --measure_kld --refine 1 --measure_encoder opt_rtn --score-cache none")
cases+=("eval|eval --model $M --text demo/stories.txt --ctx 128 --chunks 8 --threads 1 --kld-base $M")

now() { date +%s.%N; }
run() {  # binary, command -> seconds
  local t0 t1
  rm -rf "$W/out" "$W/out.partial"
  t0=$(now)
  # shellcheck disable=SC2086
  "$1" $2 $([[ $2 == eval* ]] || echo "--output_dir $W/out") >/dev/null
  t1=$(now)
  echo "$t1 - $t0" | bc -l
}
printf '%-16s %9s %9s %7s\n' case A_s B_s ratio
ta=0; tb=0; flip=0
for r in $(seq "$R"); do
  for c in "${cases[@]}"; do
    name=${c%%|*}; cmd=${c#*|}
    if (( flip )); then b=$(run "$B" "$cmd"); a=$(run "$A" "$cmd"); else a=$(run "$A" "$cmd"); b=$(run "$B" "$cmd"); fi
    flip=$((1 - flip))
    ta=$(echo "$ta + $a" | bc -l); tb=$(echo "$tb + $b" | bc -l)
    printf '%-16s %9.2f %9.2f %7.3f\n' "$name" "$a" "$b" "$(echo "$b / $a" | bc -l)"
  done
done
printf '%-16s %9.2f %9.2f %7.3f\n' total "$ta" "$tb" "$(echo "$tb / $ta" | bc -l)"
