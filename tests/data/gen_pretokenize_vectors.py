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


def classes(ch):
    cat = unicodedata.category(ch)
    return (cat[0] == "L", cat[0] == "N", bool(regex.match(r"\s", ch)))


def regex_classes(ch):
    return (bool(regex.match(r"\p{L}", ch)), bool(regex.match(r"\p{N}", ch)), bool(regex.match(r"\s", ch)))


def main():
    vectors = []
    for text in TEXTS:
        for ch in text:
            if classes(ch) != regex_classes(ch):
                sys.exit("U+%04X classifies differently in regex and unicodedata %s" % (ord(ch), unicodedata.unidata_version))
        for name, pattern in PATTERNS.items():
            pieces = regex.findall(pattern, text)
            assert "".join(pieces) == text, (name, text)
            vectors.append({"pattern": name, "text": text, "pieces": pieces})
    json.dump({"regex_version": regex.__version__, "vectors": vectors}, sys.stdout, ensure_ascii=True, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
