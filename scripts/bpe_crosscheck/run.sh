#!/usr/bin/env bash
# Cross-checks our byte-level BPE encoder against Hugging Face's own pure-JS
# implementation (@huggingface/tokenizers, tokenizers.js) on synthetic 100k-merge
# tokenizer.json files (GPT-2 with and without add_prefix_space, Llama 3 with
# ignore_merges, Qwen2), over ~3500 texts: the regex test strings, random strings
# with added tokens, and slices of ../shared/data. Not part of ctest: it needs npm and
# the npm registry. Prints one line per tokenizer and exits non-zero on any difference.
#   bash scripts/bpe_crosscheck/run.sh [workdir]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
cd "$work"
[ -d node_modules/@huggingface/tokenizers ] || npm install --silent @huggingface/tokenizers@0.2.0 >/dev/null
cp "$here/encode.mjs" .
python3 "$here/make_inputs.py" "$repo" "$work"
src="$repo/src/tokenizer"
g++ -O2 -std=c++17 -I"$repo/src" "$here/encode.cpp" "$src/tokenizer.cpp" "$src/byte_level_bpe.cpp" \
  "$src/hf_tokenizer_json.cpp" "$src/pretokenize.cpp" "$src/unicode_classes.cpp" "$src/unicode_tables.cpp" -o encode
status=0
for name in gpt2 gpt2_prefix_space llama3 qwen2; do
  ./encode "tok_$name.json" texts.json "ours_$name.json"
  node encode.mjs "tok_$name.json" texts.json "js_$name.json"
  python3 - "$name" <<'PY' || status=1
import json, sys
name = sys.argv[1]
ours, theirs = json.load(open(f"ours_{name}.json")), json.load(open(f"js_{name}.json"))
texts = json.load(open("texts.json"))
bad = [i for i in range(len(texts)) if ours[i] != theirs[i]]
print(f"{name}: {len(texts)} texts, {sum(map(len, ours))} ids, {len(bad)} differ")
for i in bad[:3]:
    print("  ", repr(texts[i][:80]), ours[i][:16], theirs[i][:16])
sys.exit(1 if bad else 0)
PY
done
exit $status
