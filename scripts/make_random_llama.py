#!/usr/bin/env python3
"""Writes a random-weight Llama folder (config.json + model.safetensors, F32) of a chosen size,
with the Python standard library only: for memory and speed measurements of quantize/export on
models larger than the 4m demo. Weights are one block of N(0, 0.02) floats repeated, so writing
is fast; the values do not matter for memory or time.

usage: make_random_llama.py OUT_DIR [--hidden 1024] [--intermediate 2816] [--layers 12]
                            [--heads 16] [--kv-heads 4] [--vocab 4096]
"""
import argparse, array, json, os, random, struct

def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--intermediate", type=int, default=2816)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=4096)
    a = p.parse_args()
    D, F, hd = a.hidden, a.intermediate, a.hidden // a.heads
    shapes = [("model.embed_tokens.weight", [a.vocab, D])]
    for i in range(a.layers):
        pre = f"model.layers.{i}."
        shapes += [(pre + "input_layernorm.weight", [D]), (pre + "post_attention_layernorm.weight", [D]),
                   (pre + "self_attn.q_proj.weight", [a.heads * hd, D]),
                   (pre + "self_attn.k_proj.weight", [a.kv_heads * hd, D]),
                   (pre + "self_attn.v_proj.weight", [a.kv_heads * hd, D]),
                   (pre + "self_attn.o_proj.weight", [D, a.heads * hd]),
                   (pre + "mlp.gate_proj.weight", [F, D]), (pre + "mlp.up_proj.weight", [F, D]),
                   (pre + "mlp.down_proj.weight", [D, F])]
    shapes += [("model.norm.weight", [D]), ("lm_head.weight", [a.vocab, D])]
    random.seed(1)
    block = array.array("f", (random.gauss(0.0, 0.02) for _ in range(1 << 16))).tobytes()
    ones = array.array("f", [1.0] * D).tobytes()
    header, off = {}, 0
    for name, shape in shapes:
        n = 4
        for d in shape: n *= d
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for name, shape in shapes:
            if len(shape) == 1:
                f.write(ones)
                continue
            n = shape[0] * shape[1] * 4
            for _ in range(n // len(block)): f.write(block)
            f.write(block[: n % len(block)])
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": D,
           "intermediate_size": F, "num_hidden_layers": a.layers, "num_attention_heads": a.heads,
           "num_key_value_heads": a.kv_heads, "head_dim": hd, "vocab_size": a.vocab,
           "max_position_embeddings": 2048, "rope_theta": 10000.0, "rms_norm_eps": 1e-5,
           "tie_word_embeddings": False, "hidden_act": "silu", "torch_dtype": "float32",
           "bos_token_id": 1, "eos_token_id": 2}
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)

if __name__ == "__main__":
    main()
