#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<target>/ from the real files in ../shared (cut small)
plus a few hand-made variants. Run from the repo root: python3 fuzz/make_corpus.py [SHARED].
Seeds stay a few KB each (the repo ships them); bench/fuzz.sh grows a working copy."""
import json, os, random, struct, sys

SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "shared")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
M4 = os.path.join(SHARED, "models", "tinystories-llama-4m")
S260 = os.path.join(SHARED, "models", "stories260K")
rng = random.Random(13)


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ---- safetensors -------------------------------------------------------------------------
def safetensors(tensors, metadata=None):
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, esize in tensors:
        n = esize
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + n]}
        data += bytes(rng.randrange(256) for _ in range(n))
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


real = read(os.path.join(M4, "model.safetensors"))
n = struct.unpack("<Q", real[:8])[0]
real_header = json.loads(real[8:8 + n])
names = [k for k in real_header if k != "__metadata__"][:6]
put("safetensors", "real_4m_header_only", real[:8 + n])  # truncated data: refused, header parsed
put("safetensors", "small_f32_f16_bf16", safetensors(
    [(names[0], "F32", [4, 3], 4), (names[1], "F16", [2, 2], 2), (names[2], "BF16", [5], 2)], {"format": "pt"}))
put("safetensors", "ints_and_f8", safetensors(
    [("q.qweight", "I32", [2, 2], 4), ("q.scales", "F16", [1, 2], 2), ("w.weight_packed", "U8", [2, 4], 1),
     ("w.weight_scale", "F8_E4M3", [2], 1), ("e", "F32", [0, 3], 4)]))
put("safetensors", "empty_header", safetensors([]))

# ---- safetensors index (shards written by the target: a, b in 1; c in 2) ------------------
s1, s2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
put("safetensors_index", "ok", json.dumps({"metadata": {"total_size": 30}, "weight_map": {"a": s1, "b": s1, "c": s2}}))
put("safetensors_index", "one_shard", json.dumps({"weight_map": {"a": s1}}))
put("safetensors_index", "wrong_shard", json.dumps({"weight_map": {"a": s2, "c": s2}}))
put("safetensors_index", "missing", json.dumps({"weight_map": {"x": "model-00003-of-00003.safetensors"}}))

# ---- config.json --------------------------------------------------------------------------
cfg = json.loads(read(os.path.join(M4, "config.json")))
put("hf_config", "real_4m", read(os.path.join(M4, "config.json")))
for arch, extra in [("Qwen2ForCausalLM", {"use_sliding_window": False}), ("Qwen3ForCausalLM", {}),
                    ("MistralForCausalLM", {"sliding_window": 256})]:
    c = dict(cfg, architectures=[arch], **extra)
    put("hf_config", arch, json.dumps(c, indent=1))
put("hf_config", "llama3_rope", json.dumps(dict(cfg, rope_scaling={
    "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    "original_max_position_embeddings": 256})))
put("hf_config", "linear_rope", json.dumps(dict(cfg, rope_scaling={"type": "linear", "factor": 2.0})))
put("hf_config", "autoround", json.dumps(dict(cfg, quantization_config={
    "quant_method": "auto-round", "packing_format": "auto_round:auto_gptq", "bits": 4, "group_size": 128,
    "sym": True, "data_type": "int", "block_name_to_quantize": "model.layers",
    "extra_config": {"model.layers.0.mlp.down_proj": {"bits": 8}, ".*q_proj": {"bits": 16},
                     "(k|v)_proj$": {"bits": 3, "group_size": 32}}})))
put("hf_config", "autoround_mx", json.dumps(dict(cfg, quantization_config={
    "quant_method": "auto-round", "packing_format": "auto_round:llm_compressor", "bits": 4, "group_size": 32,
    "data_type": "mx_fp", "act_bits": 4, "block_name_to_quantize": ["model.layers"]})))
put("hf_config", "gptq", json.dumps(dict(cfg, quantization_config={
    "quant_method": "gptq", "bits": 4, "group_size": 128, "sym": False, "desc_act": False,
    "modules_in_block_to_quantize": [["self_attn.q_proj", "mlp.up_proj"]], "lm_head": False})))

# ---- tokenizers ---------------------------------------------------------------------------
put("sentencepiece", "real_4m_tokenizer.model", read(os.path.join(M4, "tokenizer.model")))
tok = read(os.path.join(S260, "tok512.bin"))
put("llama2c_tokenizer", "real_tok512", struct.pack("<H", 511) + tok)  # 2 bytes: vocab_size - 1
put("llama2c_tokenizer", "real_tok512_as_300", struct.pack("<H", 299) + tok)

bytes_to_unicode = {}
cs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
bs = cs[:]
k = 0
for b in range(256):
    if b not in bs:
        bs.append(b)
        cs.append(256 + k)
        k += 1
for b, c in zip(bs, cs):
    bytes_to_unicode[b] = chr(c)
vocab = {bytes_to_unicode[b]: i for i, b in enumerate(sorted(bytes_to_unicode))}
merges = []
for a, b in [("O", "n"), ("On", "c"), ("Ġ", "a"), ("Ġ", "t"), ("Ġt", "i"), ("e", "r"), ("Ġa", "t")]:
    vocab.setdefault(a + b, len(vocab))
    merges.append(a + " " + b)
for pre in [{"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
            {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
                 "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}]:
    j = {"version": "1.0", "truncation": None, "padding": None,
         "added_tokens": [{"id": len(vocab), "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                           "rstrip": False, "normalized": False, "special": True}],
         "normalizer": None, "pre_tokenizer": pre, "post_processor": None,
         "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
         "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                   "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                   "ignore_merges": pre["type"] == "Sequence", "vocab": vocab, "merges": merges}}
    put("tokenizer_json", "gpt2_style" if pre["type"] == "ByteLevel" else "llama3_style", json.dumps(j))

# ---- llama2.c checkpoints -----------------------------------------------------------------
def llama2c(dim, hidden, layers, heads, kv, vocab_size, seq, shared=True, version=None):
    hd = dim // heads
    floats = (vocab_size * dim + layers * dim + layers * dim * dim + 2 * layers * dim * kv * hd +
              layers * dim * dim + layers * dim + 3 * layers * dim * hidden + dim + seq * hd)
    if not shared:
        floats += vocab_size * dim
    body = struct.pack("<%df" % floats, *[rng.uniform(-1, 1) for _ in range(floats)])
    if version is None:
        return struct.pack("<7i", dim, hidden, layers, heads, kv, vocab_size if shared else -vocab_size, seq) + body
    hdr = struct.pack("<II", 0x616B3432, version) + struct.pack("<7i", dim, hidden, layers, heads, kv, vocab_size, seq)
    hdr += struct.pack("<B", 1 if shared else 0)
    hdr += b"\0" * (256 - len(hdr))
    return hdr + body


put("llama2c", "real_260k_header_cut", read(os.path.join(S260, "stories260K.bin"))[:4096])
put("llama2c", "tiny_shared", llama2c(8, 16, 1, 2, 1, 12, 4))
put("llama2c", "tiny_unshared", llama2c(8, 16, 2, 2, 2, 10, 4, shared=False))
put("llama2c", "tiny_v1", llama2c(8, 16, 1, 2, 1, 12, 4, version=1))

# ---- GGUF ---------------------------------------------------------------------------------
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)


def gstr(s):
    s = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(s)) + s


def gval(t, v):
    if t == STR:
        return gstr(v)
    if t == ARR:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(gval(et, x) for x in items)
    fmt = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "?", U64: "Q", I64: "q",
           F64: "d"}[t]
    return struct.pack("<" + fmt, v)


def gguf(kvs, tensors, align=32):
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for k, t, v in kvs:
        out += gstr(k) + struct.pack("<I", t) + gval(t, v)
    data, infos = b"", b""
    for name, gtype, dims, nbytes in tensors:
        data += b"\0" * ((align - len(data) % align) % align)
        infos += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", gtype, len(data))
        data += bytes(rng.randrange(256) for _ in range(nbytes))
    out += infos
    out += b"\0" * ((align - len(out) % align) % align)
    return out + data


pieces = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)] + ["\u2581", "\u2581a", "\u2581c", "a", "t",
                                                                           "On", "ce", "\u2581upon", "\u2581time"]
types = [2, 3, 3] + [6] * 256 + [1] * 9
base = [("general.architecture", STR, "llama"), ("general.alignment", U32, 32),
        ("llama.block_count", U32, 1), ("llama.context_length", U32, 64), ("llama.embedding_length", U32, 32),
        ("llama.feed_forward_length", U32, 64), ("llama.attention.head_count", U32, 2),
        ("llama.attention.head_count_kv", U32, 1), ("llama.rope.freq_base", F32, 10000.0),
        ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5)]
spm = [("tokenizer.ggml.model", STR, "llama"), ("tokenizer.ggml.tokens", ARR, (STR, pieces)),
       ("tokenizer.ggml.scores", ARR, (F32, [-float(i) for i in range(len(pieces))])),
       ("tokenizer.ggml.token_type", ARR, (I32, types)), ("tokenizer.ggml.bos_token_id", U32, 1),
       ("tokenizer.ggml.eos_token_id", U32, 2), ("tokenizer.ggml.add_bos_token", BOOL, True)]
gpt2_tokens = list(vocab.keys())
bpe = [("tokenizer.ggml.model", STR, "gpt2"), ("tokenizer.ggml.pre", STR, "llama-bpe"),
       ("tokenizer.ggml.tokens", ARR, (STR, gpt2_tokens)), ("tokenizer.ggml.token_type", ARR, (I32, [1] * len(gpt2_tokens))),
       ("tokenizer.ggml.merges", ARR, (STR, merges)), ("tokenizer.ggml.bos_token_id", U32, 0)]
# types: F32 0, F16 1, Q4_0 2, Q8_0 8, Q2_K 10, Q4_K 12, Q6_K 14 (block bytes 18, 34, 84, 144, 210 per 32/256)
tens = [("token_embd.weight", 0, [32, 2], 256), ("blk.0.attn_norm.weight", 1, [32], 64),
        ("blk.0.attn_q.weight", 2, [32, 2], 36), ("blk.0.attn_k.weight", 8, [32, 1], 34),
        ("blk.0.ffn_up.weight", 12, [256, 1], 144), ("blk.0.ffn_down.weight", 14, [256, 1], 210),
        ("blk.0.ffn_gate.weight", 10, [256, 1], 84)]
put("gguf", "spm_vocab_mixed_types", gguf(base + spm, tens))
put("gguf", "bpe_vocab", gguf(base + bpe, tens[:2]))
put("gguf", "all_value_types", gguf([("a.u8", U8, 1), ("a.i8", I8, -1), ("a.u16", U16, 2), ("a.i16", I16, -2),
                                      ("a.u64", U64, 3), ("a.i64", I64, -3), ("a.f64", F64, 0.5),
                                      ("a.arr", ARR, (U8, [1, 2])), ("a.sarr", ARR, (STR, ["x", ""])), ("general.alignment", U32, 64)],
                                     [("t", 0, [4], 16)], align=64))
real = read(os.path.join(SHARED, "reference", "llamacpp", "tinystories-llama-4m", "tinystories-llama-4m-Q8_0.gguf"))
# The real file's metadata (architecture, sizes, its 1024-token vocabulary), with its tensors
# replaced by two tiny ones so the seed stays small.
off = 24
def skip_str(o):
    return o + 8 + struct.unpack_from("<Q", real, o)[0]
def skip_val(o, t):
    if t == STR:
        return skip_str(o)
    if t == ARR:
        et, cnt = struct.unpack_from("<IQ", real, o)
        o += 12
        for _ in range(cnt):
            o = skip_val(o, et)
        return o
    return o + {U8: 1, I8: 1, U16: 2, I16: 2, U32: 4, I32: 4, F32: 4, BOOL: 1, U64: 8, I64: 8, F64: 8}[t]
n_kv = struct.unpack_from("<Q", real, 16)[0]
for _ in range(n_kv):
    off = skip_str(off)
    t = struct.unpack_from("<I", real, off)[0]
    off = skip_val(off + 4, t)
tail = gguf([], tens[:2])[24:]  # tensor infos + data of two tiny tensors
put("gguf", "real_q8_0_metadata_tiny_tensors", real[:8] + struct.pack("<Q", 2) + real[16:off] + tail)

# ---- layer config, JSON, regexes, text ----------------------------------------------------
put("layer_config", "exact_and_patterns", json.dumps({
    "model.layers.0.mlp.down_proj": {"bits": 8, "group_size": 128, "sym": True, "data_type": "int"},
    "(q|k|v)_proj": {"bits": 3, "group_size": 32, "sym": False},
    "model\\.layers\\.[01]\\.mlp\\.(?:gate|up)_proj$": {"bits": 4, "data_type": "mx_fp", "group_size": 32},
    "lm_head": {"bits": 16, "data_type": "fp16"}}, indent=1))
put("layer_config", "record_form", json.dumps({"layers": {"model.layers.1.self_attn.o_proj": {"bits": 2, "group_size": 64},
                                                          "^.*down.*$": {"bits": 4, "data_type": "nv_fp", "group_size": 16}}}))
put("layer_config", "gguf_types", json.dumps({"mlp": {"data_type": "gguf:q4_k"}, "attn": {"data_type": "gguf:q8_0"}}))
put("json", "run_json", json.dumps({"model": "demo/tinystories-llama-4m", "scheme": {"bits": 4, "group_size": 128},
                                    "iters": 200, "nsamples": 128, "seqlen": 512, "seed": 42, "lr": None,
                                    "layers": [1, 2.5, "x\u00e9\\\"", True, {}]}, indent=2))
put("json", "escapes", '{"a":"\\u00e9\\ud83d\\ude00\\n","b":[1e308,-0.0,12345678901234567890],"c":{"d":[[[]]]}}')
put("json", "generation_config", read(os.path.join(M4, "generation_config.json")))
put("safe_regex", "alternation", "(q|k|v)_proj$\nmodel.layers.0.self_attn.k_proj")
put("safe_regex", "classes", "^model\\.layers\\.[0-9]+\\.mlp\\.(?:gate|up)_proj\nmodel.layers.12.mlp.up_proj")
put("safe_regex", "small", "(a|b)*.?[^a]+$\nabba.1")
put("safe_regex", "catastrophic", "(.|.)*Z\nmodel.layers.0.self_attn.q_proj.weight.xxxxxxxxxxxxxxxxxxxxxxxx")
put("utf8", "stories", read(os.path.join(os.path.dirname(__file__), "..", "demo", "stories.txt"))[:2048])
put("utf8", "mixed", "Once upon a time \u00e9\u4e2d\U0001F600 \uFFFD\U0010FFFF\n".encode())
put("utf8", "jsonl", '{"text": "Once upon a time"}\n\n{"text": "there was a cat \\u00e9"}\n'.encode())
print("corpus written to", OUT)
