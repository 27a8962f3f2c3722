#!/usr/bin/env bash
# Peak RSS of tuning against depth (docs/results-moe.md): the upcycled Qwen3-MoE (8 experts,
# top-2, scripts/make_upcycled_moe.py --layers N, blocks repeating the 4m model's four) at N
# blocks, quantized with SignRoundV2 W4A16 (fake-quant output). Blocks are loaded one at a time
# and their mapped pages released after decoding, so peak RSS should not grow with N. Prints
# per depth: the model's fp32 weights, one block's, peak RSS (the run record's VmHWM and
# /usr/bin/time's maximum resident set) and seconds per block.
#
# Usage: bench/moe_depth.sh [out_dir]       (from the repository root, after building)
# Environment: DEPTHS ("4 8 16"), EXPERTS (8), ITERS (20), NSAMPLES (16), SEQLEN (256),
#              EXTRA (more script flags, e.g. "--sparse-step 2"), SR (build/src/signround).
set -euo pipefail
OUT=${1:-/tmp/signround-moe-depth}
SR=${SR:-build/src/signround}
DEPTHS=${DEPTHS:-"4 8 16"}
EXPERTS=${EXPERTS:-8}
ITERS=${ITERS:-20}
NSAMPLES=${NSAMPLES:-16}
SEQLEN=${SEQLEN:-256}
EXTRA=${EXTRA:-}
DATA=${SHARED:-../shared}/data/calib_stories.txt
mkdir -p "$OUT"
for n in $DEPTHS; do
  m="$OUT/moe${EXPERTS}x$n"
  # shellcheck disable=SC2086
  [ -s "$m/model.safetensors" ] || python3 scripts/make_upcycled_moe.py "$m" --experts "$EXPERTS" --layers "$n" $EXTRA 2>/dev/null
  [ -s "$m.json" ] || /usr/bin/time -v -o "$m.time" "$SR" quantize --quiet --json --threads 2 --model "$m" \
    --scheme W4A16 --iters "$ITERS" --nsamples "$NSAMPLES" --seqlen "$SEQLEN" --dataset "$DATA" \
    --output_dir "$m.out" > "$m.json"
  rm -rf "$m.out"
done
python3 - "$OUT" "$EXPERTS" "$DEPTHS" <<'PY'
import json, os, re, sys
out, e, depths = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
print("| blocks | model fp32 weights | one block's fp32 weights | peak RSS (VmHWM) | max RSS (time -v) | s per block |")
print("|---|---|---|---|---|---|")
for n in depths:
    m = f"{out}/moe{e}x{n}"
    j = json.load(open(m + ".json"))
    size = os.path.getsize(m + "/model.safetensors")
    block = (size - 2 * 1024 * 256 * 4) / int(n)  # less the embeddings and lm_head
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(m + ".time").read()).group(1))
    sec = sum(u["seconds"] for u in j["units"]) / len(j["units"])
    print(f"| {n} | {size / 2**20:.0f} MiB | {block / 2**20:.1f} MiB | {j['peak_rss_bytes'] / 2**20:.0f} MiB "
          f"| {rss / 1024:.0f} MiB | {sec:.1f} |")
PY
