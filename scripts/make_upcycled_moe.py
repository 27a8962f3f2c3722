#!/usr/bin/env python3
"""Writes an "upcycled" mixture-of-experts model derived from the trained 4m demo model (a dense
Llama), with the Python standard library only: a test model whose predictions stay as peaked as
the dense model's, so that quantization differences are measurable on a MoE.

Each block's MLP becomes E experts, each a perturbed copy of it (W + noise·std(W)·N(0,1), a fresh
draw per expert), and a seeded random router picks k of them per token. With norm_topk_prob the
k routing weights sum to one, so the block computes roughly the dense MLP plus a token-dependent
mix of perturbations: the experts differ, the model stays close to the trained one.

Architectures (--arch):
  qwen3moe  Qwen3MoeForCausalLM: mlp.gate, mlp.experts.<e>.{gate,up,down}_proj, plus the q/k
            RMSNorm Qwen3 applies over head_dim. The dense model has none; its weights are set to
            an estimate of the typical RMS of q and k per head (from the weights: sqrt of the mean
            over a head's rows of Σ_j W_ij² γ_j², γ the attention norm), so that attention keeps
            roughly its trained temperature, times --qk-gain (default 3: the weight-only estimate
            is too small for real activations). Chosen on the calibration text, 20 chunks of 256
            tokens, KL divergence to the dense model (signround eval --kld-base): gain 2.5, 3,
            3.5 gave 0.131, 0.093, 0.135 (gain 1: 1.64); perplexity 11.0 there against the
            dense model's 10.0 (measured once, `eval --text calib_stories.txt --ctx 256 --chunks 20`).
  mixtral   MixtralForCausalLM: block_sparse_moe.gate, block_sparse_moe.experts.<e>.w1/w3/w2; the
            attention is the dense model's exactly.
  dense     LlamaForCausalLM with the active parameters of a top-k MoE: its MLP is k perturbed
            copies side by side (intermediate k·F, down_proj scaled by 1/k), the reference for
            comparing a MoE's throughput with a dense model of equal active parameters.

Depth and dense blocks:
  --layers N           N blocks, block l derived from the source's block l mod L (deeper test
                       models for memory measurements; predictions no longer the dense model's).
  --sparse-step S, --mlp-only-layers I,J
                       qwen3moe only: Qwen-MoE's decoder_sparse_step and mlp_only_layers. Block l
                       is sparse iff l is not listed and (l + 1) % S == 0 (transformers' rule);
                       a dense block keeps the source block's MLP unchanged (intermediate_size).

The generator is deterministic (random.Random(seed)); the output is F32 safetensors plus the demo
model's tokenizer files.

usage: make_upcycled_moe.py OUT_DIR [--arch qwen3moe|mixtral|dense] [--experts 8] [--top-k 2]
                            [--noise 0.1] [--router-scale 4] [--seed 1] [--src demo/tinystories-llama-4m]
                            [--layers N] [--sparse-step 1] [--mlp-only-layers I,J]
"""
import argparse, array, json, math, os, random, shutil, struct, sys

HERE = os.path.dirname(os.path.abspath(__file__))


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        if e["dtype"] != "F32":
            sys.exit(f"{path}: tensor {name} is {e['dtype']}; this script reads F32 only")
        a = array.array("f")
        a.frombytes(data[e["data_offsets"][0]:e["data_offsets"][1]])
        if sys.byteorder != "little":
            a.byteswap()
        out[name] = (e["shape"], a)
    return out


def write_safetensors(path, tensors):
    header, off = {}, 0
    for name, (shape, a) in tensors:
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + 4 * len(a)]}
        off += 4 * len(a)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for _, (_, a) in tensors:
            if sys.byteorder != "little":
                a = array.array("f", a)
                a.byteswap()
            f.write(a.tobytes())
    os.replace(tmp, path)


def std(a):
    m = sum(a) / len(a)
    return math.sqrt(sum((x - m) ** 2 for x in a) / len(a))


def perturbed(a, noise, rng):
    s = noise * std(a)
    return array.array("f", (x + s * rng.gauss(0.0, 1.0) for x in a))


def head_rms(w, gamma, rows, cols, hd):
    """Typical RMS over head_dim of (W · diag(gamma) · x) for x with unit-variance entries."""
    per_row = []
    for i in range(rows):
        r = w[i * cols:(i + 1) * cols]
        per_row.append(sum((r[j] * gamma[j]) ** 2 for j in range(cols)))
    heads = [math.sqrt(sum(per_row[h * hd:(h + 1) * hd]) / hd) for h in range(rows // hd)]
    return sum(heads) / len(heads)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--arch", choices=["qwen3moe", "mixtral", "dense"], default="qwen3moe")
    p.add_argument("--experts", type=int, default=8)
    p.add_argument("--top-k", type=int, default=2)
    p.add_argument("--noise", type=float, default=0.1, help="perturbation std, relative to each weight's std")
    p.add_argument("--router-scale", type=float, default=4.0, help="router weight std times sqrt(hidden)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--qk-gain", type=float, default=3.0, help="qwen3moe: multiplies the q/k norm weights")
    p.add_argument("--src", default=os.path.join(HERE, "..", "demo", "tinystories-llama-4m"))
    p.add_argument("--layers", type=int, default=0, help="blocks (default: the source's)")
    p.add_argument("--sparse-step", type=int, default=1, help="qwen3moe: decoder_sparse_step")
    p.add_argument("--mlp-only-layers", default="", help="qwen3moe: mlp_only_layers, comma-separated")
    a = p.parse_args()
    cfg = json.load(open(os.path.join(a.src, "config.json")))
    if cfg["architectures"] != ["LlamaForCausalLM"]:
        sys.exit(f"{a.src}: expected a dense LlamaForCausalLM")
    if not 1 <= a.top_k <= a.experts:
        sys.exit("--top-k must lie in [1, --experts]")
    src = read_safetensors(os.path.join(a.src, "model.safetensors"))
    D, F, L_src = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    L = a.layers or L_src
    mlp_only = [int(x) for x in a.mlp_only_layers.split(",") if x.strip()]
    if (a.sparse_step != 1 or mlp_only) and a.arch != "qwen3moe":
        sys.exit("--sparse-step and --mlp-only-layers are Qwen-MoE fields: use --arch qwen3moe")
    if a.sparse_step < 1 or any(not 0 <= i < L for i in mlp_only):
        sys.exit(f"--sparse-step must be >= 1 and --mlp-only-layers indices in [0, {L})")
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim", D // H)
    rng = random.Random(a.seed)
    qwen = a.arch == "qwen3moe"
    dense = a.arch == "dense"
    moe = "mlp." if qwen else "block_sparse_moe."
    names = ("gate_proj", "up_proj", "down_proj") if qwen else ("w1", "w3", "w2")
    out = [("model.embed_tokens.weight", src["model.embed_tokens.weight"])]
    for l in range(L):
        p_ = f"model.layers.{l}."
        s_ = f"model.layers.{l % L_src}."  # the source block
        for n in ("input_layernorm", "post_attention_layernorm"):
            out.append((p_ + n + ".weight", src[s_ + n + ".weight"]))
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            out.append((p_ + "self_attn." + n + ".weight", src[s_ + "self_attn." + n + ".weight"]))
        if qwen:
            gamma = src[s_ + "input_layernorm.weight"][1]
            for n, rows in (("q", H * hd), ("k", KV * hd)):
                g = a.qk_gain * head_rms(src[s_ + f"self_attn.{n}_proj.weight"][1], gamma, rows, D, hd)
                out.append((p_ + f"self_attn.{n}_norm.weight", ([hd], array.array("f", [g] * hd))))
        if qwen and (l in mlp_only or (l + 1) % a.sparse_step != 0):
            for hf in ("gate_proj", "up_proj", "down_proj"):
                out.append((p_ + "mlp." + hf + ".weight", src[s_ + "mlp." + hf + ".weight"]))
            print(f"block {l + 1}/{L} (dense)", file=sys.stderr)
            continue
        if dense:
            k = a.top_k
            for hf in ("gate_proj", "up_proj"):
                shape, w = src[s_ + "mlp." + hf + ".weight"]
                rows = array.array("f")
                for _ in range(k):
                    rows.extend(perturbed(w, a.noise, rng))
                out.append((p_ + "mlp." + hf + ".weight", ([k * shape[0], shape[1]], rows)))
            shape, w = src[s_ + "mlp.down_proj.weight"]
            copies = [perturbed(w, a.noise, rng) for _ in range(k)]
            cols = array.array("f")
            for i in range(shape[0]):
                for c in copies:
                    cols.extend(x / k for x in c[i * shape[1]:(i + 1) * shape[1]])
            out.append((p_ + "mlp.down_proj.weight", ([shape[0], k * shape[1]], cols)))
            print(f"block {l + 1}/{L}", file=sys.stderr)
            continue
        s = a.router_scale / math.sqrt(D)
        out.append((p_ + moe + "gate.weight", ([a.experts, D], array.array("f", (s * rng.gauss(0.0, 1.0) for _ in range(a.experts * D))))))
        for e in range(a.experts):
            for n, hf in zip(names, ("gate_proj", "up_proj", "down_proj")):
                shape, w = src[s_ + "mlp." + hf + ".weight"]
                out.append((p_ + f"{moe}experts.{e}.{n}.weight", (shape, perturbed(w, a.noise, rng))))
        print(f"block {l + 1}/{L}", file=sys.stderr)
    out.append(("model.norm.weight", src["model.norm.weight"]))
    out.append(("lm_head.weight", src["lm_head.weight"]))
    cfg = dict(cfg)
    cfg["num_hidden_layers"] = L
    if dense:
        cfg["intermediate_size"] = a.top_k * F
    else:
        cfg["architectures"] = ["Qwen3MoeForCausalLM" if qwen else "MixtralForCausalLM"]
        cfg["model_type"] = "qwen3_moe" if qwen else "mixtral"
        cfg["num_experts_per_tok"] = a.top_k
    if qwen:
        cfg.update({"num_experts": a.experts, "moe_intermediate_size": F, "norm_topk_prob": True,
                    "decoder_sparse_step": a.sparse_step, "mlp_only_layers": mlp_only})
    elif not dense:
        cfg["num_local_experts"] = a.experts
    os.makedirs(a.out, exist_ok=True)
    write_safetensors(os.path.join(a.out, "model.safetensors"), out)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    for n in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"):
        if os.path.exists(os.path.join(a.src, n)):
            shutil.copy(os.path.join(a.src, n), os.path.join(a.out, n))


if __name__ == "__main__":
    main()
