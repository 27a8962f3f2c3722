#!/usr/bin/env python3
"""Writes a random-weight Llama-family folder (config.json + safetensors) of a chosen size, with
the Python standard library only: for memory and speed measurements of quantize/export on models
larger than the 4m demo. Weights are one block of N(0, 0.02) floats repeated, so writing is fast
(disk-bound); the values do not matter for memory or time. Norm weights are 1.

usage: make_random_llama.py OUT_DIR [--hidden 1024] [--intermediate 2816] [--layers 12]
                            [--heads 16] [--kv-heads 4] [--head-dim D] [--vocab 4096]
                            [--arch llama|qwen3] [--dtype f32|bf16] [--tie] [--shard-gb G]
                            [--tokenizer-from DIR] [--max-pos 2048]
       make_random_llama.py OUT_DIR --preset llama-3.2-1b|qwen3-8b [--layers N]

Real shapes (docs/results-scale.md): the presets set the published model's shape, BF16, its
tying, 2 GiB shards with model.safetensors.index.json and the 4m demo model's SentencePiece
tokenizer (its 1024 pieces; the rows past them are unused, and the GGUF writer pads the
vocabulary with [PAD<i>] tokens, as llama.cpp's converter does). --layers picks the depth, so
4..36-block variants of the same width exist. Defaults without a preset are the old ones (F32,
one model.safetensors, untied, no tokenizer).
"""
import argparse, array, json, os, random, shutil, struct

PRESETS = {
    # meta-llama/Llama-3.2-1B: tied embeddings, 128256 tokens.
    "llama-3.2-1b": dict(arch="llama", hidden=2048, intermediate=8192, layers=16, heads=32, kv_heads=8,
                         head_dim=64, vocab=128256, tie=True, dtype="bf16", rope_theta=500000.0),
    # Qwen/Qwen3-8B: untied, q/k RMSNorm, head_dim 128, 151936 tokens.
    "qwen3-8b": dict(arch="qwen3", hidden=4096, intermediate=12288, layers=36, heads=32, kv_heads=8,
                     head_dim=128, vocab=151936, tie=False, dtype="bf16", rope_theta=1000000.0),
}
DEMO_TOKENIZER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "models",
                              "tinystories-llama-4m")


def tensor_shapes(a):
    D, F, hd = a.hidden, a.intermediate, a.head_dim
    shapes = [("model.embed_tokens.weight", [a.vocab, D])]
    for i in range(a.layers):
        pre = f"model.layers.{i}."
        shapes += [(pre + "input_layernorm.weight", [D]), (pre + "post_attention_layernorm.weight", [D]),
                   (pre + "self_attn.q_proj.weight", [a.heads * hd, D]),
                   (pre + "self_attn.k_proj.weight", [a.kv_heads * hd, D]),
                   (pre + "self_attn.v_proj.weight", [a.kv_heads * hd, D]),
                   (pre + "self_attn.o_proj.weight", [D, a.heads * hd])]
        if a.arch == "qwen3":
            shapes += [(pre + "self_attn.q_norm.weight", [hd]), (pre + "self_attn.k_norm.weight", [hd])]
        shapes += [(pre + "mlp.gate_proj.weight", [F, D]), (pre + "mlp.up_proj.weight", [F, D]),
                   (pre + "mlp.down_proj.weight", [D, F])]
    shapes += [("model.norm.weight", [D])]
    if not a.tie:
        shapes += [("lm_head.weight", [a.vocab, D])]
    return shapes


def encode(values, dtype):
    """Little-endian bytes of `values` in F32 or BF16 (BF16: the top half of the F32, truncated)."""
    f32 = array.array("f", values)
    if dtype == "f32":
        return f32.tobytes()
    u32 = array.array("I", f32.tobytes())
    return array.array("H", (u >> 16 for u in u32)).tobytes()


def write_shard(path, items, dtype, block, one):
    """One safetensors file of `items` [(name, shape)]."""
    esize = 4 if dtype == "f32" else 2
    header, off = {}, 0
    for name, shape in items:
        n = esize
        for d in shape: n *= d
        header[name] = {"dtype": dtype.upper(), "shape": shape, "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for name, shape in items:
            if len(shape) == 1:
                f.write(one * shape[0])
                continue
            n = shape[0] * shape[1] * esize
            for _ in range(n // len(block)): f.write(block)
            f.write(block[: n % len(block)])
    os.replace(tmp, path)
    return off


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--preset", choices=sorted(PRESETS))
    p.add_argument("--arch", choices=["llama", "qwen3"])
    p.add_argument("--hidden", type=int)
    p.add_argument("--intermediate", type=int)
    p.add_argument("--layers", type=int)
    p.add_argument("--heads", type=int)
    p.add_argument("--kv-heads", type=int)
    p.add_argument("--head-dim", type=int)
    p.add_argument("--vocab", type=int)
    p.add_argument("--dtype", choices=["f32", "bf16"])
    p.add_argument("--tie", action="store_true", default=None)
    p.add_argument("--shard-gb", type=float, help="largest shard in GiB (sharded with an index when set)")
    p.add_argument("--tokenizer-from", help="copy tokenizer.model/tokenizer.json and configs from this folder")
    p.add_argument("--max-pos", type=int, default=None)
    a = p.parse_args()
    base = dict(arch="llama", hidden=1024, intermediate=2816, layers=12, heads=16, kv_heads=4, head_dim=None,
                vocab=4096, tie=False, dtype="f32", rope_theta=10000.0)
    if a.preset:
        base.update(PRESETS[a.preset])
        if a.shard_gb is None: a.shard_gb = 2.0
        if a.tokenizer_from is None: a.tokenizer_from = DEMO_TOKENIZER
        if a.max_pos is None: a.max_pos = 4096
    for k, v in base.items():
        if getattr(a, k, None) is None: setattr(a, k, v)
    if a.head_dim is None: a.head_dim = a.hidden // a.heads
    if a.max_pos is None: a.max_pos = 2048

    shapes = tensor_shapes(a)
    random.seed(1)
    block = encode((random.gauss(0.0, 0.02) for _ in range(1 << 16)), a.dtype)
    one = encode([1.0], a.dtype)
    esize = 4 if a.dtype == "f32" else 2
    os.makedirs(a.out, exist_ok=True)
    if a.shard_gb is None:
        write_shard(os.path.join(a.out, "model.safetensors"), shapes, a.dtype, block, one)
    else:
        limit, shards, cur, size = int(a.shard_gb * (1 << 30)), [], [], 0
        for name, shape in shapes:
            n = esize
            for d in shape: n *= d
            if cur and size + n > limit:
                shards.append(cur)
                cur, size = [], 0
            cur.append((name, shape))
            size += n
        shards.append(cur)
        weight_map, total = {}, 0
        for i, items in enumerate(shards):
            fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            total += write_shard(os.path.join(a.out, fname), items, a.dtype, block, one)
            for name, _ in items: weight_map[name] = fname
        with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    if a.tokenizer_from:
        for name in ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            src = os.path.join(a.tokenizer_from, name)
            if os.path.exists(src): shutil.copyfile(src, os.path.join(a.out, name))
    arch = {"llama": ("LlamaForCausalLM", "llama"), "qwen3": ("Qwen3ForCausalLM", "qwen3")}[a.arch]
    cfg = {"architectures": [arch[0]], "model_type": arch[1], "hidden_size": a.hidden,
           "intermediate_size": a.intermediate, "num_hidden_layers": a.layers, "num_attention_heads": a.heads,
           "num_key_value_heads": a.kv_heads, "head_dim": a.head_dim, "vocab_size": a.vocab,
           "max_position_embeddings": a.max_pos, "rope_theta": a.rope_theta,
           "rms_norm_eps": 1e-6 if a.arch == "qwen3" else 1e-5, "tie_word_embeddings": bool(a.tie),
           "hidden_act": "silu", "torch_dtype": "bfloat16" if a.dtype == "bf16" else "float32",
           "bos_token_id": 1, "eos_token_id": 2}
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)


if __name__ == "__main__":
    main()
