#!/usr/bin/env python3
"""A Qwen2- or Qwen3-shaped HF folder made from the trained 4m demo model, for GGUF cross-checks
with a real vocabulary (docs/gguf.md, "Families x (writer, reader, llama.cpp)").

  python3 scripts/make_qwen_from_4m.py --arch qwen2 OUT   # + seeded q/k/v biases
  python3 scripts/make_qwen_from_4m.py --arch qwen3 OUT   # + q/k RMSNorm weights near 1

The 4m model's own weights and tokenizer are copied unchanged; the added tensors go to a second
shard (extra.safetensors) named in model.safetensors.index.json. Deterministic: the values come
from a fixed linear congruential generator, so every run writes the same bytes. Plain Python (no
numpy or torch needed).
"""
import argparse
import json
import os
import shutil
import struct
import sys


def lcg_uniform(seed):
    """Uniform floats in [-1, 1) from a 64-bit LCG (Knuth's MMIX constants)."""
    state = seed
    while True:
        state = (6364136223846793005 * state + 1442695040888963407) % (1 << 64)
        yield (state >> 11) / float(1 << 52) - 1.0


def extra_tensors(cfg, arch):
    """(name, values) of the tensors the Qwen family adds to a Llama block."""
    layers, heads, kv = cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // heads
    rng = lcg_uniform(7)
    out = []
    for i in range(layers):
        pre = f"model.layers.{i}.self_attn."
        if arch == "qwen2":
            for proj, rows in (("q", heads * hd), ("k", kv * hd), ("v", kv * hd)):
                out.append((pre + proj + "_proj.bias", [0.3 * next(rng) for _ in range(rows)]))
        else:
            for proj in ("q", "k"):
                out.append((pre + proj + "_norm.weight", [1.0 + 0.1 * next(rng) for _ in range(hd)]))
    return out


def write_safetensors(path, tensors):
    header, data, offset = {}, bytearray(), 0
    for name, values in tensors:
        blob = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": [len(values)], "data_offsets": [offset, offset + len(blob)]}
        data += blob
        offset += len(blob)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + bytes(data))


def stored_names(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return [k for k in json.loads(f.read(n)) if k != "__metadata__"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--arch", choices=["qwen2", "qwen3"], required=True)
    p.add_argument("--src", default=os.path.join(os.path.dirname(__file__), "..", "demo", "tinystories-llama-4m"))
    a = p.parse_args()
    if os.path.exists(a.out):
        sys.exit(f"{a.out} exists; remove it or choose another folder")
    os.makedirs(a.out)
    for f in ("model.safetensors", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"):
        if os.path.exists(os.path.join(a.src, f)):
            shutil.copyfile(os.path.join(a.src, f), os.path.join(a.out, f))
    with open(os.path.join(a.src, "config.json")) as f:
        cfg = json.load(f)
    cfg["architectures"] = ["Qwen2ForCausalLM" if a.arch == "qwen2" else "Qwen3ForCausalLM"]
    cfg["model_type"] = a.arch
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    extra = extra_tensors(cfg, a.arch)
    write_safetensors(os.path.join(a.out, "extra.safetensors"), extra)
    weight_map = {n: "model.safetensors" for n in stored_names(os.path.join(a.out, "model.safetensors"))}
    weight_map.update({n: "extra.safetensors" for n, _ in extra})
    with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=2)
    print(f"{a.out}: {cfg['architectures'][0]} from {a.src} (+{len(extra)} tensors)")


if __name__ == "__main__":
    main()
