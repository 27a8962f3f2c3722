#!/usr/bin/env python3
"""Seeds for resume_state_fuzz: a block state (block_00000.safetensors, as written by
`signround quantize ... --stop_after_units 1`) cut down to its two smallest layers, so that
the seed stays a few KB. Usage: trim_block_state.py IN OUT

How fuzz/corpus/resume_state/ was made (stories260K, data-free RTN, one block per scheme):
  M=../shared/models/stories260K
  for s in W4A16 W2A16G64 W2A16G32 MXFP4 MXFP4_RCEIL MXFP8 NVFP4 FP8_STATIC W8A8 INT8; do
    signround quantize --model $M/stories260K.bin --tokenizer $M/tok512.bin --scheme $s --iters 0 \\
      --disable_opt_rtn --stop_after_units 1 --output_dir /tmp/rs/$s
    fuzz/trim_block_state.py /tmp/rs/$s.partial/block_00000.safetensors fuzz/corpus/resume_state/$s
  done
and the same with --format gguf:q4_k_m and gguf:q2_k (output /tmp/rs/<mix>.gguf) in place of --scheme.
"""
import json, struct, sys

src, dst = sys.argv[1], sys.argv[2]
raw = open(src, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
meta = header.pop("__metadata__", {})
layers = json.loads(meta["layers"])
size = {name: 0 for name in layers}
for t, e in header.items():
    owner = max((l for l in layers if t.startswith(l + ".")), key=len, default=None)
    if owner is not None:
        size[owner] += e["data_offsets"][1] - e["data_offsets"][0]
keep = sorted(layers, key=lambda l: (size[l], l))[:2]
out_header, blobs, off = {}, [], 0
for t, e in sorted(header.items()):
    owner = max((l for l in keep if t.startswith(l + ".")), key=len, default=None)
    if owner is None:
        continue
    b = data[e["data_offsets"][0]:e["data_offsets"][1]]
    out_header[t] = {"dtype": e["dtype"], "shape": e["shape"], "data_offsets": [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
meta["layers"] = json.dumps({l: layers[l] for l in keep})
out_header["__metadata__"] = meta
h = json.dumps(out_header, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)
open(dst, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
print(dst, "layers", keep, len(h) + 8 + off, "bytes")
