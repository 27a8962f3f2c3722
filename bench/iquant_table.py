#!/usr/bin/env python3
"""Markdown table of bench/iquant_acceptance.sh's results (docs/results-iquants.md).

Usage: bench/iquant_table.py <bench out dir> <mix> [<mix> ...]
Per mix: llama.cpp's file (llama-imatrix + llama-quantize --imatrix) and each of our files
(signround<TAG>-<mix>.gguf), with file size, bits/weight, quantize wall time and peak RSS
(/usr/bin/time -v; llama.cpp's time is llama-imatrix's plus llama-quantize's, its RSS the larger
of the two), PPL and KLD to F32 by c392e50's llama-perplexity (*.ppl.txt) and by the current
llama.cpp of node-llama-cpp (*.node.json), and our KLD as a multiple of llama.cpp's. The issue's
acceptance: that multiple at most 0.6 by both llama.cpp builds, with a file no larger.
"""
import json
import os
import re
import sys

PARAMS = 3672320  # tinystories-llama-4m parameters (bits/weight = file bytes * 8 / parameters)
TARGET = 0.6


def time_v(path):
    """(wall seconds, peak RSS KB) from a /usr/bin/time -v file, or None."""
    if not os.path.exists(path):
        return None
    text = open(path).read()
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if not m or not rss:
        return None
    secs = 0.0
    for part in m.group(1).split(":"):
        secs = secs * 60 + float(part)
    return secs, int(rss.group(1))


def perplexity_txt(path):
    """(PPL, KLD, same top %) from llama-perplexity --kl-divergence's output, or None."""
    if not os.path.exists(path):
        return None
    text = open(path).read()
    ppl = re.search(r"Mean PPL\(Q\)\s*:\s*([0-9.]+)", text)
    kld = re.search(r"Mean\s+KLD:\s*([-0-9.]+)", text)
    top = re.search(r"Same top p:\s*([0-9.]+)", text)
    if not (ppl and kld and top):
        return None
    return float(ppl.group(1)), float(kld.group(1)), float(top.group(1))


def node_json(path):
    if not os.path.exists(path):
        return None
    r = json.load(open(path))
    return r["ppl"], r["kld"], 100 * r["same_top"]


def fmt(x, spec):
    return "—" if x is None else format(x, spec)


def main():
    out, mixes = sys.argv[1], sys.argv[2:]
    print("| mix | file | bytes | bits/weight | quantize wall s | peak RSS MB | PPL (c392e50) | KLD (c392e50) "
          "| same top % | PPL (node-llama-cpp) | KLD (node-llama-cpp) | KLD ours / llama.cpp (c392e50; node) | accept |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    imat = time_v(os.path.join(out, "llamacpp-imatrix.time.txt"))
    for mix in mixes:
        names = ["llamacpp"] + sorted(
            f[: -len(f"-{mix}.gguf")] for f in os.listdir(out)
            if f.startswith("signround") and f.endswith(f"-{mix}.gguf"))
        ref = None
        for name in names:
            base = os.path.join(out, f"{name}-{mix}")
            if not os.path.exists(base + ".gguf"):
                continue
            size = os.path.getsize(base + ".gguf")
            t = time_v(base + ".time.txt")
            if name == "llamacpp" and t and imat:
                t = (t[0] + imat[0], max(t[1], imat[1]))
            c = perplexity_txt(base + ".ppl.txt")
            n = node_json(base + ".node.json")
            label = "llama.cpp imatrix + quantize" if name == "llamacpp" else f"signround SignRoundV2{name[9:]}"
            ratio, verdict = "", ""
            if name == "llamacpp":
                ref = (size, c, n)
            elif ref:
                rc = c[1] / ref[1][1] if c and ref[1] else None
                rn = n[1] / ref[2][1] if n and ref[2] else None
                ratio = f"{fmt(rc, '.3f')}; {fmt(rn, '.3f')}"
                known = [r for r in (rc, rn) if r is not None]
                ok = known and all(r <= TARGET for r in known) and size <= ref[0]
                verdict = "pass" if ok else "no"
            print(f"| {mix} | {label} | {size} | {size * 8 / PARAMS:.3f} | {fmt(t and t[0], '.1f')} | "
                  f"{fmt(t and t[1] / 1024, '.0f')} | {fmt(c and c[0], '.4f')} | {fmt(c and c[1], '.6f')} | "
                  f"{fmt(c and c[2], '.3f')} | {fmt(n and n[0], '.4f')} | {fmt(n and n[1], '.6f')} | {ratio} | {verdict} |")


if __name__ == "__main__":
    main()
