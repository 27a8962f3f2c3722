#!/usr/bin/env bash
# MoE GGUF acceptance (docs/results-moe.md): the upcycled Mixtral (scripts/make_upcycled_moe.py
# --arch mixtral, 8 experts, top-2) quantized to GGUF mixes with RTN, optimized RTN and
# SignRoundV2; every file measured against the F32 model twice: by signround eval (reading the
# MoE GGUF) and by llama.cpp c392e50's llama-perplexity --kl-divergence against our F32 GGUF
# (written by bench/gguf_convert, which llama.cpp reads as a Mixtral).
#
# Usage: bench/moe_gguf.sh [out_dir]            (from the repository root, after building)
# Environment: MIXES ("q2_k_s q4_k_m"), METHODS ("rtn optrtn signround"), ITERS (200),
#   NSAMPLES (64), SEQLEN (256), CHUNKS (200), SR (build/src/signround), SHARED (../shared).
# Writes <out>/<method>-<mix>.{gguf,run.json,eval.json,llamacpp.txt,time.txt} and prints a table.
set -euo pipefail

OUT=${1:-/tmp/signround-moe-gguf}
SR=${SR:-build/src/signround}
CONVERT=${CONVERT:-build/bench/gguf_convert}
SHARED=${SHARED:-../shared}
MIXES=${MIXES:-"q2_k_s q4_k_m"}
METHODS=${METHODS:-"rtn optrtn signround"}
ITERS=${ITERS:-200}
NSAMPLES=${NSAMPLES:-64}
SEQLEN=${SEQLEN:-256}
CHUNKS=${CHUNKS:-200}
TEXT=$SHARED/data/tinystories_val.txt
DATA=$SHARED/data/calib_stories.txt
LP=$SHARED/tools/llama.cpp/bin/llama-perplexity
mkdir -p "$OUT"
MODEL=$OUT/upcycled-mixtral
[ -s "$MODEL/model.safetensors" ] || python3 scripts/make_upcycled_moe.py "$MODEL" --arch mixtral
F32=$OUT/upcycled-mixtral-f32.gguf
[ -s "$F32" ] || "$CONVERT" "$MODEL" "$F32" f32
# llama.cpp's base logits for its KLD runs, and its perplexity of our F32 file.
[ -s "$OUT/f32.kld" ] || "$LP" -m "$F32" -f "$TEXT" -c 256 --chunks "$CHUNKS" -t 2 \
  --kl-divergence-base "$OUT/f32.kld" > "$OUT/f32.llamacpp.txt" 2>&1
[ -s "$OUT/f32.eval.json" ] || "$SR" eval --quiet --json --ctx 256 --chunks "$CHUNKS" --text "$TEXT" \
  --model "$MODEL" > "$OUT/f32.eval.json"

for mix in $MIXES; do
  for method in $METHODS; do
    case $method in
      signround) flags="--iters $ITERS --nsamples $NSAMPLES --seqlen $SEQLEN --dataset $DATA" ;;
      optrtn)    flags="--iters 0 --nsamples $NSAMPLES --seqlen $SEQLEN --dataset $DATA" ;;
      rtn)       flags="--iters 0 --disable_opt_rtn" ;;
      *) echo "unknown method $method" >&2; exit 2 ;;
    esac
    base="$OUT/$method-$mix"
    if [ ! -s "$base.gguf" ]; then
      echo "== quantize $method $mix" >&2
      /usr/bin/time -f "%e s wall, %M KB max RSS" -o "$base.time.txt" \
        "$SR" quantize --quiet --json --threads 2 --model "$MODEL" --format "gguf:$mix" $flags \
        --output_dir "$base.gguf" > "$base.run.json"
    fi
    [ -s "$base.eval.json" ] || "$SR" eval --quiet --json --ctx 256 --chunks "$CHUNKS" --text "$TEXT" \
      --kld-base "$MODEL" --model "$base.gguf" > "$base.eval.json"
    [ -s "$base.llamacpp.txt" ] || "$LP" -m "$base.gguf" -f "$TEXT" -c 256 --chunks "$CHUNKS" -t 2 \
      --kl-divergence-base "$OUT/f32.kld" --kl-divergence > "$base.llamacpp.txt" 2>&1
  done
done

python3 - "$OUT" "$MIXES" "$METHODS" <<'PY'
import json, re, sys
out, mixes, methods = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
f32 = json.load(open(f"{out}/f32.eval.json"))
lp = open(f"{out}/f32.llamacpp.txt").read()
m = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", lp)
print(f"F32 (HF folder, signround eval): PPL {f32['ppl']:.4f} ± {f32['ppl_stderr']:.4f}; "
      f"our F32 GGUF in llama-perplexity: PPL {m.group(1)} ± {m.group(2)}\n")
print("| mix | method | bits/weight (file) | KLD (signround eval) | KLD (llama.cpp) | same top % (llama.cpp) | quantize time | peak RSS |")
print("|---|---|---|---|---|---|---|---|")
for mix in mixes:
    for meth in methods:
        b = f"{out}/{meth}-{mix}"
        e = json.load(open(b + ".eval.json"))
        t = open(b + ".llamacpp.txt").read()
        kld = re.search(r"Mean\s+KLD:\s+([0-9.]+)\s+±\s+([0-9.]+)", t)
        top = re.search(r"Same top p:\s+([0-9.]+)\s+±\s+([0-9.]+)", t)
        run = json.load(open(b + ".run.json"))
        bpw = run["gguf"]["bits_per_weight"]
        tm = open(b + ".time.txt").read().split(",")
        print(f"| {mix} | {meth} | {bpw:.3f} | {e['kld']:.5f} ± {e['kld_stderr']:.5f} | "
              f"{kld.group(1) if kld else '?'} ± {kld.group(2) if kld else '?'} | {top.group(1) if top else '?'} | "
              f"{tm[0].strip()} | {tm[1].split()[0]} KB |")
PY
