#!/usr/bin/env bash
# Speed of bf16 amp tuning against fp32 (issue 17, part 1): bench/tuning_speed at the 4m model's
# block shape and at Llama-3.2-1B's (hidden 2048, intermediate 8192, 32 heads, 8 kv heads), each
# printing the fp32 and bf16 GEMM rates of the iteration's GEMMs measured in the same process (right
# before and after each tuning measurement),
# then the tuning's iterations/s and achieved GFLOP/s as a share of them. Run it on an idle machine.
#   bench/amp_speed.sh [threads] [iters] [llama1b seqlen] [llama1b batch]
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-0}; IT=${2:-3}; SEQ=${3:-512}; B=${4:-8}
B_=${BENCH:-build/bench/tuning_speed}
grep -m1 "model name" /proc/cpuinfo || true
echo "bf16 flags: $(grep -m1 -o -w 'avx512_bf16\|amx_bf16' /proc/cpuinfo | tr '\n' ' ')"
$B_ 4m "$IT" "$T"
$B_ llama1b "$IT" "$T" "$SEQ" "$B"
