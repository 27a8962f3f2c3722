#!/usr/bin/env bash
# DeltaLoss + DP allocation of k-quant types per tensor against llama.cpp's hand-written mixes, at
# equal file size (issue 5, GGUF options; results in docs/results-mixed-precision.md).
#
#   bench/gguf_mixed.sh [OUT]          (from the repository root after building; OUT: out/gguf_mixed)
#
# For each llama.cpp mix M (Q2_K, Q3_K_S, Q3_K_M, Q4_K_S, Q4_K_M):
#   mix       signround quantize --format gguf:M --iters 0            (llama.cpp's types per tensor,
#             encoded by llama.cpp's imatrix search with our calibration imatrix = llama.cpp+imatrix)
#   deltaloss signround autoscheme --options gguf:q2_k,...,gguf:q6_k --avg_bits B, then the same
#             quantize with --layer_config <allocation>; B is the largest budget (bisection, 1/256
#             bit) whose file is no larger than llama.cpp's own M file.
# Both differ only in which type each block tensor gets (token_embd / output keep M's types; same
# encoder, same imatrix). Every file is evaluated with
#   signround eval --protocol llamacpp --ctx 256 --chunks 200 --text tinystories_val.txt
#        --kld-base <llama.cpp's F32 GGUF>
# Environment: THREADS (2), MIXES, METHOD_FLAGS (default "--iters 0": opt-RTN; e.g.
# "--iters 200" tunes both with SignRoundV2), AUTOSCHEME_FLAGS (more autoscheme flags, e.g.
# "--deltaloss_target fp"), SIGNROUND (build/src/signround), BUDGET_LO / BUDGET_HI (the
# bisection's start, in 1/256 bit: a budget known to fit and one known not to; narrowing them
# saves autoscheme runs when they are slow, e.g. with --refine). Needs jq.
set -euo pipefail
S=${SIGNROUND:-build/src/signround}
SHARED=../shared
M=$SHARED/models/tinystories-llama-4m
REF=$SHARED/reference/llamacpp/tinystories-llama-4m
CAL=$SHARED/data/calib_stories.txt
VAL=$SHARED/data/tinystories_val.txt
OUT=${1:-out/gguf_mixed}
T=${THREADS:-2}
MIXES=${MIXES:-"Q2_K Q3_K_S Q3_K_M Q4_K_S Q4_K_M"}
METHOD_FLAGS=${METHOD_FLAGS:-"--iters 0"}
AUTOSCHEME_FLAGS=${AUTOSCHEME_FLAGS:-}
OPTIONS=gguf:q2_k,gguf:q3_k,gguf:q4_k,gguf:q5_k,gguf:q6_k
atag=$(echo "$AUTOSCHEME_FLAGS" | tr -d ' -')
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# quantize DIR MIX [flags...] -> prints the GGUF file's path
quantize() {
  local dir=$1 mix=$2
  shift 2
  rm -rf "$dir"
  # shellcheck disable=SC2086
  $S quantize --model $M --format "gguf:${mix,,}" --dataset $CAL --nsamples 128 --seqlen 256 --threads "$T" --quiet \
    "$@" --output_dir "$dir" > /dev/null
  ls "$dir"/*.gguf
}

evaluate() {  # evaluate GGUF JSON
  [ -s "$2" ] && return 0
  $S eval --model "$1" --protocol llamacpp --ctx 256 --chunks 200 --text $VAL --kld-base "$REF/tinystories-llama-4m-f32.gguf" \
    --threads "$T" --quiet --json > "$2.tmp" && mv "$2.tmp" "$2"
}

# allocation B -> layer config path (scores are cached after the first call)
allocation() {
  local dir="$OUT/alloc$atag/$1"
  ls "$dir"/layer_config_deltaloss_*.json > /dev/null 2>&1 || \
    $S autoscheme --model $M --dataset $CAL --options $OPTIONS --avg_bits "$1" --score_cache "$OUT/score_cache" \
      --threads "$T" --quiet --output_dir "$dir" $AUTOSCHEME_FLAGS > /dev/null
  ls "$dir"/layer_config_deltaloss_*.json
}

size_at() {  # size_at MIX B -> file bytes of the RTN file with that allocation
  local f
  f=$(quantize "$OUT/probe$tag" "$1" --iters 0 --disable_opt_rtn --layer_config "$(allocation "$2")")
  stat -c %s "$f"
}

tag=$(echo "$METHOD_FLAGS" | tr -d ' -')$atag
for mix in $MIXES; do
  ref_bytes=$(stat -c %s "$REF/tinystories-llama-4m-$mix.gguf")
  # Bisection on the budget in 1/256-bit steps: lo fits, hi does not.
  lo=${BUDGET_LO:-704} hi=${BUDGET_HI:-1857}  # 2.75 (all q2_k, §4.3 costs) .. 7.25 bits (all q6_k), in 1/256 bit
  while [ $((hi - lo)) -gt 1 ]; do
    mid=$(((lo + hi) / 2))
    b=$(awk -v m=$mid 'BEGIN{printf "%.6f", m/256}')
    if [ "$(size_at "$mix" "$b")" -le "$ref_bytes" ]; then lo=$mid; else hi=$mid; fi
  done
  B=$(awk -v m=$lo 'BEGIN{printf "%.6f", m/256}')
  log "$mix: budget $B bits (llama.cpp file $ref_bytes bytes)"
  for kind in mix deltaloss; do
    name="$tag-$mix-$kind"
    [ -s "$OUT/$name.eval.json" ] && continue
    extra=()
    [ $kind = deltaloss ] && extra=(--layer_config "$(allocation "$B")")
    log "quantize $name"
    # shellcheck disable=SC2086
    f=$(quantize "$OUT/$name" "$mix" $METHOD_FLAGS "${extra[@]}")
    evaluate "$f" "$OUT/$name.eval.json.part"
    jq --argjson bytes "$(stat -c %s "$f")" --arg budget "$B" '. + {bytes: $bytes, budget: ($budget|tonumber)}' \
      "$OUT/$name.eval.json.part" > "$OUT/$name.eval.json"
    rm -rf "$OUT/$name" "$OUT/$name.eval.json.part"
  done
done
rm -rf "$OUT/probe$tag"

{
  echo "| mix | allocation | file bytes | bits/weight | PPL | KLD vs F32 | same top % |"
  echo "|---|---|---|---|---|---|---|"
  for mix in $MIXES; do
    echo "| $mix | llama.cpp+imatrix (published) | $(jq -r --arg k "$mix +imatrix" '.[$k] | "\(.bytes) | \(.bytes*8/3672320*1000|round/1000) | \(.ppl) | \(.kld) | \(.same_top_pct)"' $REF/figures.json) |"
    for kind in mix deltaloss; do
      f="$OUT/$tag-$mix-$kind.eval.json"
      [ -s "$f" ] && jq -r --arg l "$kind ($METHOD_FLAGS $AUTOSCHEME_FLAGS)" --arg m "$mix" \
        '"| \($m) | \($l) | \(.bytes) | \(.bytes*8/3672320*1000|round/1000) | \(.ppl*10000|round/10000) | \(.kld*1000000|round/1000000) | \(.top1_agreement*100000|round/1000) |"' "$f"
    done
  done
} | tee "$OUT/table-$tag.md"
