#!/usr/bin/env python3
"""Expected pre-tokenizer splits for tests/tokenizer/hf_tokenizer_test.cpp, from an
independent implementation: Python's `regex` module (python3-regex) running the exact
patterns of the tokenizer.json files with findall (Hugging Face's Split "Isolated" on
these patterns, which match every character, yields exactly the matches).

Regenerate:
    python3 tests/data/gen_pretokenize_vectors.py > tests/data/pretokenize_vectors.json

Every character of every text must have the same \\p{L} / \\p{N} / \\s class in `regex`'s
Unicode tables as in Python's unicodedata (which src/tokenizer/unicode_tables.cpp is
generated from): the script refuses texts where the two Unicode versions disagree.
"""
import json
import random
import sys
import unicodedata

import regex

PATTERNS = {
    "gpt2": r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
    "llama3": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
    "qwen2": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
}

TEXTS = [
    "Hello world",
    "Hello, world! How's it going?",
    "I'm sure you'll see they've gone; we'd say it's 'quoted'.",
    "I'M SURE YOU'LL SEE THEY'VE GONE; WE'D SAY IT'S",
    "don'T 'Re 'vE 'lL 'D 'x 'ſ",
    "12345 and 1234567 and 3.14159 and 1,000,000",
    "   leading spaces and trailing spaces   ",
    "multiple    spaces   before words",
    "\n\n  \n",
    "line one\nline two\r\nline three\n\n\nend",
    "tabs\tand\t\tmore\ttabs \t x",
    "punctuation!!!\n\nand ... more???\r\n\r\nyes",
    " ?!\n x",
    "Größe naïve café Ünïcödé",
    "日本語のテキスト、漢字とかな。",
    "emoji 😀😃 and 👍🏽 thumbs",
    "Arabic digits ٣٤٥ and ١٢٣٤ here",
    "mixed:abc123def  456\t\n\t789",
    "a\u00a0b\u3000c\u2003d",
    "'s's'S ''s '' 'll'LL",
    "x  \n  y \n",
    "$100.00 (approx.) -- see [1] & {2} #3 @4",
    "end with newline\n",
    "  ",
    " ",
    "a",
    "\r\n",
    "k8s v1.2.3-rc4 x86_64",
]

# Seeded random strings over the characters the matchers treat specially, for what the
# hand-picked texts miss (Python's `random` is stable for a given seed and version 3.x).
RANDOM_ALPHABET = list("aZ '\"sStTrReEvVlLmMdD\n\r\t 0123,.!?-_") + [
    "  ", "\u017f", "\u00e9", "\u65e5", "\u0663", "\u216b", "\u00bd", "\u00a0", "\u3000", "\u2003",
    "\U0001f600", "\u0301", "\x0b", "\x0c", "\x1c", "\x85", "'ll", "'S", " \n", "\r\n"]
RANDOM_COUNT = 300


def random_texts():
    rng = random.Random(20240601)
    return ["".join(rng.choice(RANDOM_ALPHABET) for _ in range(rng.randint(1, 16))) for _ in range(RANDOM_COUNT)]


def classes(ch):
    cat = unicodedata.category(ch)
    return (cat[0] == "L", cat[0] == "N", bool(regex.match(r"\s", ch)))


def regex_classes(ch):
    return (bool(regex.match(r"\p{L}", ch)), bool(regex.match(r"\p{N}", ch)), bool(regex.match(r"\s", ch)))


def main():
    vectors = []
    for text in TEXTS + random_texts():
        for ch in text:
            if classes(ch) != regex_classes(ch):
                sys.exit("U+%04X classifies differently in regex and unicodedata %s" % (ord(ch), unicodedata.unidata_version))
        for name, pattern in PATTERNS.items():
            pieces = regex.findall(pattern, text)
            assert "".join(pieces) == text, (name, text)
            vectors.append({"pattern": name, "text": text, "pieces": pieces})
    # One vector per line, for readable diffs.
    sys.stdout.write('{"regex_version": %s, "vectors": [\n' % json.dumps(regex.__version__))
    sys.stdout.write(",\n".join(json.dumps(v, ensure_ascii=True) for v in vectors))
    sys.stdout.write("\n]}\n")


if __name__ == "__main__":
    main()
