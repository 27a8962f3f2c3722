#!/usr/bin/env bash
# Zero-shot multiple choice (story cloze cut from tinystories_val.txt, 500 items x 4 choices)
# of the 4m demo model and of quantized versions of it (docs/results-eval.md).
#
#   bench/cloze_eval.sh [OUT]        (from the repository root after building; OUT: out/cloze)
#
# Each model: signround quantize --scheme S (--iters 0 = opt-RTN, --disable_opt_rtn = RTN,
# --iters 200 = SignRoundV2), then
#   signround eval --cloze ../shared/data/tinystories_val.txt --cloze-items 500 --kld-base <F32>
# (acc, acc_norm, and the share of items where the quantized model picks what F32 picks).
# Environment: THREADS (2), SCHEMES ("W2A16G64 W4A16 MXFP4"), METHODS ("rtn opt_rtn v2"). Needs jq.
set -euo pipefail
S=./build/src/signround
M=demo/tinystories-llama-4m
CAL=../shared/data/calib_stories.txt
VAL=../shared/data/tinystories_val.txt
OUT=${1:-out/cloze}
T=${THREADS:-2}
SCHEMES=${SCHEMES:-"W2A16G64 W4A16 MXFP4"}
METHODS=${METHODS:-"rtn opt_rtn v2"}
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
flags() {
  case $1 in
    rtn) echo "--iters 0 --disable_opt_rtn" ;;
    opt_rtn) echo "--iters 0" ;;
    v2) echo "--iters 200 --nsamples 64 --seqlen 256" ;;
  esac
}
evaluate() {  # evaluate NAME MODEL
  [ -s "$OUT/$1.json" ] && return 0
  log "eval $1"
  $S eval --model "$2" --cloze $VAL --cloze-items 500 --kld-base $M --threads "$T" --quiet --json > "$OUT/$1.json.tmp"
  mv "$OUT/$1.json.tmp" "$OUT/$1.json"
}
evaluate f32 $M
for s in $SCHEMES; do
  for m in $METHODS; do
    name="${s}_$m"
    [ -s "$OUT/$name.json" ] && continue
    log "quantize $name"
    # shellcheck disable=SC2046
    $S quantize --model $M --scheme "$s" --dataset $CAL $(flags "$m") --threads "$T" --quiet \
      --output_dir "$OUT/m_$name" > /dev/null
    evaluate "$name" "$OUT/m_$name"
    rm -rf "$OUT/m_$name"
  done
done
{
  echo "| model | acc | acc_norm | same choice as F32 (acc / acc_norm) |"
  echo "|---|---|---|---|"
  for f in "$OUT"/f32.json "$OUT"/*_*.json; do
    [ -s "$f" ] || continue
    jq -r --arg n "$(basename "$f" .json)" '.multiple_choice |
      "| \($n) | \(.acc*1000|round/1000) ± \(.acc_stderr*1000|round/1000) | \(.acc_norm*1000|round/1000) ± \(.acc_norm_stderr*1000|round/1000) | \(.agreement*1000|round/10) % / \(.agreement_norm*1000|round/10) % |"' "$f"
  done
} > "$OUT/table.md"
log "done: $OUT/table.md"
