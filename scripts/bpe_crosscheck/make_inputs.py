"""Writes tok_<name>.json (synthetic byte-level tokenizers) and texts.json for run.sh.
The vocabulary: the 256 byte characters, every prefix of the words of tinystories_val.txt
as left-to-right merges, then seeded random merges up to 100,000; 256 special added
tokens "<|reserved_<i>|>" past the vocabulary."""
import copy
import json
import random
import re
import sys

repo, work = sys.argv[1], sys.argv[2]
sys.path.insert(0, repo + "/tests/data")
import gen_pretokenize_vectors as vectors  # noqa: E402


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


m = bytes_to_unicode()
shared = repo + "/../shared/data/"
stories = open(shared + "tinystories_val.txt", encoding="utf-8").read()
wiki = open(shared + "wiki.test.raw", encoding="utf-8").read()

vocab = {m[b]: b for b in range(256)}
merges = []
counts = {}
for w in re.findall(r" ?[A-Za-z]+", stories):
    k = "".join(m[b] for b in w.encode())
    counts[k] = counts.get(k, 0) + 1
for w, _ in sorted(counts.items(), key=lambda x: (-x[1], x[0])):
    for i in range(2, len(w) + 1):
        if w[:i] not in vocab:
            vocab[w[:i]] = len(vocab)
            merges.append(w[:i - 1] + " " + w[i - 1])
rng = random.Random(0)
toks = list(vocab)
while len(merges) < 100000:
    a, b = rng.choice(toks), rng.choice(toks[:256])
    if a + b not in vocab:
        vocab[a + b] = len(vocab)
        merges.append(a + " " + b)
        toks.append(a + b)
added = [{"id": len(vocab) + i, "content": "<|reserved_%d|>" % i, "special": True} for i in range(256)]


def split(pattern):
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}


def byte_level(prefix):
    return {"type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": True, "use_regex": True}


base = {"model": {"type": "BPE", "vocab": vocab, "merges": merges, "ignore_merges": False},
        "added_tokens": added, "decoder": {"type": "ByteLevel"}}
for name, pre, ignore in [("gpt2", byte_level(False), False), ("gpt2_prefix_space", byte_level(True), False),
                          ("llama3", split(vectors.PATTERNS["llama3"]), True),
                          ("qwen2", split(vectors.PATTERNS["qwen2"]), False)]:
    j = copy.deepcopy(base)
    j["pre_tokenizer"] = pre
    j["model"]["ignore_merges"] = ignore
    json.dump(j, open(f"{work}/tok_{name}.json", "w"))

texts = sorted(set(vectors.TEXTS + vectors.random_texts()))
rng = random.Random(5)
for t in (wiki, stories):
    for _ in range(100):
        a = rng.randrange(len(t) - 3000)
        texts.append(t[a:a + rng.randrange(1, 3000)])
alphabet = list("aZ '\"sStTrReEvVlLmMdD\n\r\t 0123,.!?-_<|>") + [
    "  ", "\u017f", "\u00e9", "\u65e5", "\u0663", "\u00a0", "\u3000", "\U0001f600", "\u0301",
    "<|reserved_3|>", "<|reserved_1", "the", " and"]
for _ in range(3000):
    texts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30))))
json.dump(texts, open(f"{work}/texts.json", "w"))
