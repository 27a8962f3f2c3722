#!/usr/bin/env bash
# Memory and time of tuning MoE blocks against the number of experts (docs/results-moe.md):
# the 4m demo model upcycled to E experts (top-2, scripts/make_upcycled_moe.py), quantized with
# SignRoundV2 W4A16 (fake-quant output). Prints per E: one block's weights, peak RSS of the run,
# seconds per block, and the tokens the experts of block 0 received.
#
# Usage: bench/moe_memory.sh [out_dir]      (from the repository root, after building)
# Environment: EXPERTS ("8 64"), ITERS (50), NSAMPLES (32), SEQLEN (256), SR (build/src/signround).
set -euo pipefail
OUT=${1:-/tmp/signround-moe-memory}
SR=${SR:-build/src/signround}
EXPERTS=${EXPERTS:-"8 64"}
ITERS=${ITERS:-50}
NSAMPLES=${NSAMPLES:-32}
SEQLEN=${SEQLEN:-256}
DATA=${SHARED:-../shared}/data/calib_stories.txt
mkdir -p "$OUT"
run() {  # run <model> <name>
  [ -s "$OUT/$2.json" ] || "$SR" quantize --quiet --json --threads 2 --model "$1" --scheme W4A16 --iters "$ITERS" \
    --nsamples "$NSAMPLES" --seqlen "$SEQLEN" --dataset "$DATA" --output_dir "$OUT/$2.out" > "$OUT/$2.json"
  rm -rf "$OUT/$2.out"
}
run demo/tinystories-llama-4m dense
for e in $EXPERTS; do
  [ -s "$OUT/moe$e/model.safetensors" ] || python3 scripts/make_upcycled_moe.py "$OUT/moe$e" --experts "$e" 2>/dev/null
  run "$OUT/moe$e" "moe$e"
done
python3 - "$OUT" "$EXPERTS" <<'PY'
import json, sys
out, experts = sys.argv[1], sys.argv[2].split()
D, F, hd, H, KV = 256, 768, 64, 4, 2
attn = (H * hd * D * 2 + KV * hd * D * 2) * 4
print("| model | experts | one block's weights | peak RSS | s per block | tokens per expert, block 0 (min / max) |")
print("|---|---|---|---|---|---|")
for name, e in [("dense", 0)] + [(f"moe{x}", int(x)) for x in experts]:
    j = json.load(open(f"{out}/{name}.json"))
    w = attn + (3 * D * F * 4 if e == 0 else e * 3 * D * F * 4 + e * D * 4)
    units = j["units"]
    sec = sum(u["seconds"] for u in units) / len(units)
    tok = units[0].get("expert_tokens", {}).get("0")
    t = f"{min(tok)} / {max(tok)}" if tok else "-"
    print(f"| {name} | {e or '-'} | {w / 2**20:.1f} MiB | {j['peak_rss_bytes'] / 2**20:.0f} MiB | {sec:.1f} | {t} |")
PY
