#!/usr/bin/env bash
# Mixed-precision acceptance measurements on the 4m demo model (docs/results-mixed-precision.md).
#
#   bench/autoscheme_4m.sh [OUT]     (from the repository root after building; OUT: out/autoscheme)
#
# Every model is made with `signround quantize --layer_config <allocation>` (or --scheme for the
# pure baselines) and scored with exactly
#   signround eval --protocol llamacpp --ctx 256 --chunks 200 \
#       --text ../shared/data/tinystories_val.txt --kld-base demo/tinystories-llama-4m
# Results land in OUT/evals/<name>.json (kept: a re-run skips what exists), the allocations in
# OUT/alloc/<experiment>/ (autoscheme's files, report.html with the PPL-vs-bits curve), the
# tables in OUT/tables.md. Environment: THREADS (default 2), METHODS (default "rtn v2";
# rtn = --iters 0, v2 = SignRoundV2 with V2_FLAGS), V2_BUDGETS (targets tuned with v2, default
# "4.5"). Needs jq.
set -euo pipefail
command -v jq >/dev/null || { echo "autoscheme_4m.sh: needs jq (apt-get install jq)" >&2; exit 2; }

S=./build/src/signround
BENCH=./build/bench/deltaloss_bench
M=demo/tinystories-llama-4m
CAL=../shared/data/calib_stories.txt
VAL=../shared/data/tinystories_val.txt
OUT=${1:-out/autoscheme}
T=${THREADS:-2}
METHODS=${METHODS:-"rtn v2"}
V2_BUDGETS=${V2_BUDGETS:-"4.5"}
V2_FLAGS=${V2_FLAGS:-"--iters 200 --nsamples 64 --seqlen 256"}
mkdir -p "$OUT/evals" "$OUT/models" "$OUT/alloc"
CACHE="$OUT/score_cache"

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

method_flags() {  # rtn | v2
  case $1 in
    rtn) echo "--iters 0 --dataset $CAL" ;;
    v2) echo "$V2_FLAGS --dataset $CAL" ;;
  esac
}

# evaluate NAME METHOD QUANTIZE_FLAGS...: quantize, evaluate, delete the model.
evaluate() {
  local name=$1 method=$2
  shift 2
  local json="$OUT/evals/$name.json"
  [ -s "$json" ] && return 0
  log "quantize $name ($method)"
  # shellcheck disable=SC2046
  $S quantize --model $M --threads "$T" --quiet $(method_flags "$method") "$@" \
    --output_dir "$OUT/models/$name" > "$OUT/models/$name.quantize.txt"
  log "eval $name"
  $S eval --model "$OUT/models/$name" --protocol llamacpp --ctx 256 --chunks 200 --text $VAL --kld-base $M \
    --threads "$T" --quiet --json > "$json.tmp"
  jq --arg bits "$(jq -r '.average_bits' "$OUT/models/$name/quantization.json")" '. + {avg_bits: ($bits|tonumber)}' \
    "$json.tmp" > "$json" && rm "$json.tmp"
  rm -rf "$OUT/models/$name"
}

# allocations EXP DATASET OPTIONS BUDGETS ALLOCATORS [extra autoscheme flags]
allocations() {
  local exp=$1 data=$2 options=$3 budgets=$4 allocators=$5
  shift 5
  log "autoscheme $exp"
  $S autoscheme --model $M --dataset "$data" --options "$options" --avg_bits "$budgets" --allocator "$allocators" \
    --score_cache "$CACHE" --threads "$T" --quiet --output_dir "$OUT/alloc/$exp" "$@" > "$OUT/alloc/$exp.txt"
}

# --- allocations --------------------------------------------------------------------------------
allocations mx "$CAL" MXFP4,MXFP8 4.5,5,6 deltaloss,head8,tail8,random
allocations mx_fp "$CAL" MXFP4,MXFP8 4.5,5,6 deltaloss --deltaloss_target fp
allocations int "$CAL" W2A16G64,W4A16 3 deltaloss,head8,tail8,random
allocations int_fp "$CAL" W2A16G64,W4A16 3 deltaloss --deltaloss_target fp
# every allocation's KLD measured on the scoring tokens (RTN): does the lowest pick the best?
allocations mx_measured "$CAL" MXFP4,MXFP8 4.5,5,6 deltaloss,head8,tail8,random --measure_kld
allocations int_measured "$CAL" W2A16G64,W4A16 3 deltaloss,head8,tail8,random --measure_kld
# the DeltaLoss allocation refined by measured local search (alloc/refine.h), measured with the
# encoder --iters 0 uses
allocations mx_refined "$CAL" MXFP4,MXFP8 4.5,5,6 deltaloss --refine 4 --measure_encoder opt_rtn
allocations int_refined "$CAL" W2A16G64,W4A16 3 deltaloss --refine 4 --measure_encoder opt_rtn
# the best of every MXFP4/MXFP8 allocation at 4.5 bits, measured (the lowest calibration KLD any
# allocator can reach there)
[ -s "$OUT/exhaustive_mx_4.5.txt" ] || SIGNROUND_THREADS=$T $BENCH exhaustive $M $CAL MXFP4 MXFP8 4.5 \
  "$OUT/alloc/exhaustive_mx_4.5.json" > "$OUT/exhaustive_mx_4.5.txt"
# q/k/v and gate/up as one DP item each (a fused QKV / gate_up GEMM quantizes its input once)
allocations mx_fused "$CAL" MXFP4,MXFP8 4.5,5,6 deltaloss --fuse_groups on
# Transfer (does an allocation scored on one text hold on another?): the same DeltaLoss scored on
# 16 other windows of calib_stories.txt (--seed 7: the sampling noise) and on out-of-domain
# technical prose (the project's two shared docs, markdown with formulas). wiki.test.raw, the
# issue's suggestion, is evaluation-only data in this project, so it is not used for scoring.
DOCS="$OUT/docs_calib.txt"
[ -s "$DOCS" ] || cat ../shared/docs/signround-algorithm.md ../shared/docs/style.md > "$DOCS"
allocations mx_seed7 "$CAL" MXFP4,MXFP8 4.5,5,6 deltaloss --seed 7
allocations mx_docs "$DOCS" MXFP4,MXFP8 4.5,5,6 deltaloss
allocations int_seed7 "$CAL" W2A16G64,W4A16 3 deltaloss --seed 7
allocations int_docs "$DOCS" W2A16G64,W4A16 3 deltaloss

# --- quantize + evaluate --------------------------------------------------------------------------
for method in $METHODS; do
  budgets_mx="4.5 5 6"
  [ "$method" = v2 ] && budgets_mx=$V2_BUDGETS
  for s in MXFP4 MXFP8 W2A16G64 W4A16; do evaluate "${method}_pure_$s" "$method" --scheme "$s"; done
  for b in $budgets_mx; do
    for a in deltaloss head8 tail8 random; do
      evaluate "${method}_mx_${a}_$b" "$method" --layer_config "$OUT/alloc/mx/layer_config_${a}_$b.json"
    done
    evaluate "${method}_mx_deltaloss-fp_$b" "$method" --layer_config "$OUT/alloc/mx_fp/layer_config_deltaloss_$b.json"
    evaluate "${method}_mx_deltaloss-refined_$b" "$method" --layer_config "$OUT/alloc/mx_refined/layer_config_deltaloss_$b.json"
  done
  evaluate "${method}_mx_exhaustive_4.5" "$method" --layer_config "$OUT/alloc/exhaustive_mx_4.5.json"
  evaluate "${method}_int_deltaloss-refined_3" "$method" --layer_config "$OUT/alloc/int_refined/layer_config_deltaloss_3.json"
  for a in deltaloss head8 tail8 random; do
    evaluate "${method}_int_${a}_3" "$method" --layer_config "$OUT/alloc/int/layer_config_${a}_3.json"
  done
  evaluate "${method}_int_deltaloss-fp_3" "$method" --layer_config "$OUT/alloc/int_fp/layer_config_deltaloss_3.json"
  [ "$method" = rtn ] || continue
  for b in 4.5 5 6; do
    evaluate "${method}_mxfused_deltaloss_$b" "$method" --layer_config "$OUT/alloc/mx_fused/layer_config_deltaloss_$b.json"
  done
  for src in seed7 docs; do
    for b in 4.5 5 6; do
      evaluate "${method}_mx${src}_deltaloss_$b" "$method" --layer_config "$OUT/alloc/mx_$src/layer_config_deltaloss_$b.json"
    done
    evaluate "${method}_int${src}_deltaloss_3" "$method" --layer_config "$OUT/alloc/int_$src/layer_config_deltaloss_3.json"
  done
done

# --- transfer: share of layers whose chosen scheme agrees with the calib_stories allocation -------
agree() {  # agree A.json B.json -> "k/n"
  jq -rn --slurpfile a "$1" --slurpfile b "$2" \
    '[$a[0].layers | keys[] as $k | ($a[0].layers[$k] == $b[0].layers[$k])] | "\(map(select(.)) | length)/\(length)"'
}
kld() { [ -s "$1" ] && jq -r '.kld*1000000|round/1000000' "$1" || echo "-"; }
{
  echo "| scored on | options | bits | layers agreeing with seed 42 | KLD of this allocation | KLD of seed 42's |"
  echo "|---|---|---|---|---|---|"
  for src in seed7 docs; do
    for b in 4.5 5 6; do
      echo "| $src | MXFP4,MXFP8 | $b | $(agree "$OUT/alloc/mx/layer_config_deltaloss_$b.json" "$OUT/alloc/mx_$src/layer_config_deltaloss_$b.json")" \
        "| $(kld "$OUT/evals/rtn_mx${src}_deltaloss_$b.json") | $(kld "$OUT/evals/rtn_mx_deltaloss_$b.json") |"
    done
    echo "| $src | W2A16G64,W4A16 | 3 | $(agree "$OUT/alloc/int/layer_config_deltaloss_3.json" "$OUT/alloc/int_$src/layer_config_deltaloss_3.json")" \
      "| $(kld "$OUT/evals/rtn_int${src}_deltaloss_3.json") | $(kld "$OUT/evals/rtn_int_deltaloss_3.json") |"
  done
} > "$OUT/transfer.md"

# --- scoring cost: one option's scoring pass vs one plain forward+backward, 3 runs each ---------
if [ ! -s "$OUT/cost.txt" ]; then
  log "cost"
  for i in 1 2 3; do
    SIGNROUND_THREADS=$T $BENCH time-reference $M $CAL MXFP4
    SIGNROUND_THREADS=$T $BENCH time-score $M $CAL MXFP4
    SIGNROUND_THREADS=$T $BENCH time-score $M $CAL MXFP8
  done > "$OUT/cost.txt"
fi
# --- how the scores rank layers (calibration data; see bench/deltaloss_bench.cpp) ----------------
[ -s "$OUT/rank_mx.txt" ] || SIGNROUND_THREADS=$T $BENCH rank $M $CAL MXFP4 MXFP8 > "$OUT/rank_mx.txt"
[ -s "$OUT/rank_mx_fp.txt" ] || DELTALOSS_TARGET=fp SIGNROUND_THREADS=$T $BENCH rank $M $CAL MXFP4 MXFP8 > "$OUT/rank_mx_fp.txt"
[ -s "$OUT/rank_int.txt" ] || SIGNROUND_THREADS=$T $BENCH rank $M $CAL W2A16G64 W4A16 > "$OUT/rank_int.txt"

# --- interactions: upgrades do not add up (MXFP4 -> MXFP8 in block 3's attention, and block 0's
# down_proj alone, the best single upgrade measured by `rank`), KLD on the calibration tokens ----
IX="$OUT/alloc/interactions"
if [ ! -s "$OUT/interactions.txt" ]; then
  mkdir -p "$IX"
  pure="$IX/pure_MXFP4.json"
  hi=$(jq -c '.layers["model.layers.0.self_attn.q_proj"]' "$OUT/alloc/mx/layer_config_head8_4.5.json")  # head8 lifts it
  lo=$(jq -c '.layers["model.layers.0.self_attn.q_proj"]' "$OUT/alloc/mx/layer_config_tail8_4.5.json")
  jq --argjson lo "$lo" '.layers |= map_values($lo)' "$OUT/alloc/mx/layer_config_tail8_4.5.json" > "$pure"
  up() {  # up NAME LAYER... : pure MXFP4 with the listed layers in MXFP8
    local name=$1 expr='.'
    shift
    for l in "$@"; do expr="$expr | .layers[\"model.layers.$l\"] = \$hi"; done
    jq --argjson hi "$hi" "$expr" "$pure" > "$IX/$name.json"
  }
  a=self_attn
  up b3_q 3.$a.q_proj; up b3_k 3.$a.k_proj; up b3_v 3.$a.v_proj; up b3_o 3.$a.o_proj
  up b3_qk 3.$a.q_proj 3.$a.k_proj; up b3_vo 3.$a.v_proj 3.$a.o_proj
  up b3_qkvo 3.$a.q_proj 3.$a.k_proj 3.$a.v_proj 3.$a.o_proj; up b0_down 0.mlp.down_proj
  # one side at a time: MXFP8 activations with MXFP4 weights (A8), and the reverse (W8)
  full=$hi
  hi=$(jq -c '.act_bits = 8' <<< "$lo"); up b3A8_v 3.$a.v_proj; up b3A8_o 3.$a.o_proj; up b3A8_vo 3.$a.v_proj 3.$a.o_proj
  hi=$(jq -c '.bits = 8' <<< "$lo"); up b3W8_v 3.$a.v_proj; up b3W8_o 3.$a.o_proj; up b3W8_vo 3.$a.v_proj 3.$a.o_proj
  hi=$full
  SIGNROUND_THREADS=$T $BENCH kld $M $CAL "$pure" "$IX"/b*.json > "$OUT/interactions.txt"
fi
evaluate rtn_mx_b0down_4.5 rtn --layer_config "$IX/b0_down.json"

# --- tables ------------------------------------------------------------------------------------
row() {  # row NAME LABEL
  local f="$OUT/evals/$1.json"
  [ -s "$f" ] || return 0
  jq -r --arg l "$2" '"| \($l) | \(.avg_bits*10000|round/10000) | \(.ppl*10000|round/10000) ± \(.ppl_stderr*10000|round/10000) | \(.kld*1000000|round/1000000) ± \(.kld_stderr*1000000|round/1000000) | \(.top1_agreement*1000|round/10) |"' "$f"
}
header() { echo; echo "### $1"; echo; echo "| model | bits/weight | PPL | KLD | same top % |"; echo "|---|---|---|---|---|"; }
{
  for method in $METHODS; do
    budgets_mx="4.5 5 6"
    [ "$method" = v2 ] && budgets_mx=$V2_BUDGETS
    header "MXFP4,MXFP8 — $method"
    row "${method}_pure_MXFP4" "pure MXFP4"
    row "${method}_pure_MXFP8" "pure MXFP8"
    for b in $budgets_mx; do
      for a in deltaloss deltaloss-fp deltaloss-refined head8 tail8 random; do row "${method}_mx_${a}_$b" "$a @ $b"; done
      row "${method}_mxfused_deltaloss_$b" "deltaloss, q/k/v and gate/up fused @ $b"
    done
    row "${method}_mx_b0down_4.5" "block 0 down_proj alone (measured best) @ 4.5"
    row "${method}_mx_exhaustive_4.5" "best of all allocations, measured @ 4.5"
    header "W2A16G64,W4A16 — $method"
    row "${method}_pure_W2A16G64" "pure W2A16G64"
    row "${method}_pure_W4A16" "pure W4A16"
    for a in deltaloss deltaloss-fp deltaloss-refined head8 tail8 random; do row "${method}_int_${a}_3" "$a @ 3"; done
  done
} > "$OUT/tables.md"

# --- the HTML reports with the quality-vs-bits curves (scores come from the cache) --------------
points() {  # points METHOD EXP-PREFIX ALLOCATOR... -> JSON list for --eval_results
  local method=$1 exp=$2
  shift 2
  for a in "$@"; do
    for f in "$OUT"/evals/"${method}_${exp}_${a}"_*.json; do
      [ -s "$f" ] && jq -c --arg l "$a" '{label: $l, avg_bits, ppl, ppl_stderr, kld}' "$f"
    done
  done
  for s in MXFP4 MXFP8; do
    f="$OUT/evals/${method}_pure_$s.json"
    [ -s "$f" ] && jq -c --arg l "pure $s" '{label: $l, avg_bits, ppl, ppl_stderr, kld}' "$f"
  done
}
points rtn mx deltaloss deltaloss-fp head8 tail8 random | jq -s . > "$OUT/alloc/mx_rtn_points.json"
$S autoscheme --model $M --dataset "$CAL" --options MXFP4,MXFP8 --avg_bits 4.5,5,6 \
  --allocator deltaloss,head8,tail8,random --score_cache "$CACHE" --threads "$T" --quiet \
  --eval_results "$OUT/alloc/mx_rtn_points.json" --output_dir "$OUT/alloc/mx" > /dev/null
log "done: $OUT/tables.md, $OUT/transfer.md, $OUT/alloc/mx/report.html"
