#!/usr/bin/env python3
"""Markdown table of bench/gguf_acceptance.sh's results beside llama.cpp's figures.

Usage: bench/gguf_table.py <bench out dir> <figures.json of the llama.cpp reference>
Rows per mix: signround (SignRoundV2), optrtn (llama.cpp's imatrix encoder with our calibration
imatrix), rtn (llama.cpp's ref encoder), all evaluated by `signround eval`; then llama.cpp's own
file evaluated by `signround eval` (no imatrix: the only files kept), and llama.cpp's published
figures (llama-perplexity, with and without imatrix; they include llama.cpp's own activation
quantization, ~1e-4 of KLD).
"""
import json
import os
import re
import sys

PARAMS = 3672320  # tinystories-llama-4m parameters (bits/weight = file bytes * 8 / parameters)
LLAMA_TYPE = {"q2_k_s": "Q2_K", "q3_k_m": "Q3_K_M", "q4_k_m": "Q4_K_M", "q4_0": "Q4_0"}
LABEL = {"signround": "signround SignRoundV2", "optrtn": "signround opt-RTN (= llama.cpp +imatrix encoder)",
         "rtn": "signround RTN (= llama.cpp ref encoder)"}


def load(path):
    with open(path) as f:
        return json.load(f)


def row(name, size, ev, extra=""):
    bpw = size * 8 / PARAMS
    return (f"| {name} | {size} | {bpw:.3f} | {ev['ppl']:.4f} | {ev['kld']:.6f} | "
            f"{100 * ev['top1_agreement']:.3f} | {extra} |")


def main():
    out, figures = sys.argv[1], load(sys.argv[2])
    mixes = []
    for f in sorted(os.listdir(out)):
        m = re.match(r"(signround|optrtn|rtn)-(.+)\.eval\.json$", f)
        if m and m.group(2) not in mixes:
            mixes.append(m.group(2))
    print("| file | bytes | bits/weight | PPL | KLD | same top % | quantize wall time, peak RSS; GGUF export |")
    print("|---|---|---|---|---|---|---|")
    for mix in mixes:
        for method in ("signround", "optrtn", "rtn"):
            base = os.path.join(out, f"{method}-{mix}")
            if not os.path.exists(base + ".eval.json"):
                continue
            t = open(base + ".time.txt").read().strip().splitlines()[-1] if os.path.exists(base + ".time.txt") else ""
            run = load(base + ".run.json")
            export = sum(run.get("export_seconds", {}).values())
            t = f"{t}; export {export:.2f} s"
            print(row(f"{mix} {LABEL[method]}", os.path.getsize(base + ".gguf"), load(base + ".eval.json"), t))
        lt = LLAMA_TYPE.get(mix)
        if lt:
            p = os.path.join(out, f"llamacpp-{lt}.eval.json")
            if os.path.exists(p):
                print(row(f"{lt} llama.cpp file (signround eval)", figures[lt]["bytes"], load(p)))
            for key in (lt, lt + " +imatrix"):
                fig = figures[key]
                ev = {"ppl": fig["ppl"], "kld": fig["kld"], "top1_agreement": fig["same_top_pct"] / 100}
                print(row(f"{key} llama.cpp (llama-perplexity, table.md)", fig["bytes"], ev))


if __name__ == "__main__":
    main()
