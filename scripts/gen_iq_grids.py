#!/usr/bin/env python3
"""Writes src/quant/formats/ggml_iq_grids.cpp: the lattice grids of ggml's i-quants
(IQ3_XXS, IQ3_S, IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S, IQ1_M), which are data, not code.

Source: llama.cpp (MIT licence, Copyright (c) 2023-2024 The ggml authors),
ggml/src/ggml-common.h at commit c392e5094 (2025-02-20), tables iq2xxs_grid, iq2xs_grid,
iq2s_grid, iq3xxs_grid, iq3s_grid and iq1s_grid (GGML_TABLE_BEGIN ... GGML_TABLE_END).
The grids have not changed since they were added (early 2024).

ksigns_iq2xs and kmask_iq2xs are not stored: they are defined by a rule (ksigns[i] = i with
bit 7 set when i has an odd number of set bits, kmask[j] = 1 << j), which the .cpp states.

Input, one of:
  --header ggml-common.h   the upstream header (the tables are parsed out of it);
  --binary llama-quantize  a llama.cpp build of the same commit (../shared/tools/llama.cpp/bin/
                           llama-quantize), where the tables lie verbatim in read-only data;
                           each is found by its first entries (copied below from the header)
                           and checked: its size, its value alphabet, ascending order, and the
                           last two entries of the header.
The committed file was made with --binary from ../shared's c392e50 build; both inputs give
the same tables. Regenerate:
    python3 scripts/gen_iq_grids.py --binary ../shared/tools/llama.cpp/bin/llama-quantize \\
        > src/quant/formats/ggml_iq_grids.cpp
It prints each table's FNV-1a 64 checksum to stderr; tests/quant/ggml_iq_grids_test.cpp holds
them and checks the compiled tables against them (and against the binary when present).
"""
import argparse
import re
import struct
import sys

# name, C type, entries, struct code, first entries, last two entries, byte alphabet
TABLES = [
    ("iq2xxs_grid", "uint64_t", 256, "Q",
     [0x0808080808080808, 0x080808080808082b, 0x0808080808081919, 0x0808080808082b08,
      0x0808080808082b2b, 0x0808080808190819, 0x0808080808191908, 0x08080808082b0808],
     [0x2b2b2b0819190808, 0x2b2b2b1908081908], {0x08, 0x19, 0x2b}),
    ("iq2xs_grid", "uint64_t", 512, "Q",
     [0x0808080808080808, 0x080808080808082b, 0x0808080808081919, 0x0808080808082b08,
      0x0808080808082b2b, 0x0808080808190819, 0x0808080808191908, 0x080808080819192b],
     [0x2b2b2b2b2b190819, 0x2b2b2b2b2b2b2b2b], {0x08, 0x19, 0x2b}),
    ("iq2s_grid", "uint64_t", 1024, "Q",
     [0x0808080808080808, 0x080808080808082b, 0x0808080808081919, 0x0808080808082b08,
      0x0808080808082b2b, 0x0808080808190819, 0x0808080808191908, 0x080808080819192b],
     [0x2b2b2b2b2b082b08, 0x2b2b2b2b2b2b2b2b], {0x08, 0x19, 0x2b}),
    ("iq3xxs_grid", "uint32_t", 256, "I",
     [0x04040404, 0x04040414, 0x04040424, 0x04040c0c],
     [0x3e2c1424, 0x3e341c04], {0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3e}),
    ("iq3s_grid", "uint32_t", 512, "I",
     [0x01010101, 0x01010103, 0x01010105, 0x0101010b],
     [0x0f0d0703, 0x0f0f0101], {1, 3, 5, 7, 9, 11, 13, 15}),
    ("iq1s_grid", "uint64_t", 2048, "Q",
     [0xffffffffffffffff, 0xffffffffffffff01, 0xffffffffffff0000, 0xffffffffffff01ff],
     None, {0xff, 0x00, 0x01}),
]


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def check(name, vals, n, size, first, last, alphabet):
    if len(vals) != n:
        sys.exit(f"{name}: {len(vals)} entries, want {n}")
    if list(vals[:len(first)]) != first or (last and list(vals[-2:]) != last):
        sys.exit(f"{name}: first or last entries are not ggml-common.h's")
    if any(vals[i] >= vals[i + 1] for i in range(n - 1)) and name != "iq1s_grid":
        sys.exit(f"{name}: not ascending")
    for v in vals:
        if any(((v >> (8 * k)) & 255) not in alphabet for k in range(size)):
            sys.exit(f"{name}: entry {v:#x} has a byte outside the grid's values")


def from_header(text, name, n):
    m = re.search(r"GGML_TABLE_BEGIN\(\w+,\s*" + name + r",\s*\w+\)(.*?)GGML_TABLE_END\(\)", text, re.S)
    if not m:
        sys.exit(f"{name} not found in the header")
    return [int(v, 16) for v in re.findall(r"0x[0-9a-fA-F]+", m.group(1))]


def from_binary(blob, name, n, code, first):
    sig = struct.pack("<%d%s" % (len(first), code), *first)
    size = struct.calcsize(code)
    found = []
    i = blob.find(sig)
    while i >= 0:
        vals = list(struct.unpack_from("<%d%s" % (n, code), blob, i)) if i + n * size <= len(blob) else []
        found.append(vals)
        i = blob.find(sig, i + 1)
    return found


def main():
    ap = argparse.ArgumentParser()
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--header")
    src.add_argument("--binary")
    a = ap.parse_args()
    tables = []
    for name, ctype, n, code, first, last, alphabet in TABLES:
        size = struct.calcsize(code)
        if a.header:
            vals = from_header(open(a.header).read(), name, n)
            check(name, vals, n, size, first, last, alphabet)
        else:
            ok = []
            for vals in from_binary(open(a.binary, "rb").read(), name, n, code, first):
                try:
                    check(name, vals, n, size, first, last, alphabet)
                    ok.append(vals)
                except SystemExit:
                    pass
            if not ok or any(v != ok[0] for v in ok):
                sys.exit(f"{name}: {len(ok)} candidate copies in the binary, or they disagree")
            vals = ok[0]
        data = struct.pack("<%d%s" % (n, code), *vals)
        print(f"{name}: fnv1a64 0x{fnv1a64(data):016x}", file=sys.stderr)
        tables.append((name, ctype, n, vals, size))

    out = ["// GENERATED by scripts/gen_iq_grids.py; do not edit. The i-quant grids of ggml",
           "// (llama.cpp c392e50, ggml/src/ggml-common.h, MIT licence, Copyright (c) 2023-2024",
           "// The ggml authors): each entry packs one grid point, coordinate j in byte j",
           "// (little-endian). tests/quant/ggml_iq_grids_test.cpp checks every table's checksum.",
           '#include "quant/formats/ggml_iq_grids.h"', "", "namespace sr::iq_grids {", ""]
    for name, ctype, n, vals, size in tables:
        per_line = 4 if size == 8 else 8
        out.append(f"const {ctype} {name}[{n}] = {{  // {n} points")
        for i in range(0, n, per_line):
            w = 2 * size
            out.append("    " + " ".join(f"0x{v:0{w}x}," for v in vals[i:i + per_line]))
        out.append("};")
        out.append("")
    out.append("}  // namespace sr::iq_grids")
    print("\n".join(out))


if __name__ == "__main__":
    main()
