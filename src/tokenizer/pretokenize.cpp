// Hand-written matchers for the three pre-tokenizer regexes (contract in pretokenize.h).
// Each match_* returns the length in characters of the match starting at character i,
// or 0 when the alternative does not match there; the caller tries the alternatives
// in the regex's order, which is what a backtracking engine does at one position.
#include "tokenizer/pretokenize.h"

#include "tokenizer/unicode_classes.h"

namespace sr {
namespace {

const std::string kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const std::string kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const std::string kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// The text decoded once: code points and their classes, indexable by character.
struct Chars {
  std::vector<uint32_t> cp;
  std::vector<CharClass> cls;
  std::vector<size_t> offset;  // byte offset of each character, plus the end

  size_t size() const { return cp.size(); }
  bool is(size_t i, CharClass c) const { return i < size() && cls[i] == c; }
  bool is_cp(size_t i, uint32_t c) const { return i < size() && cp[i] == c; }
  bool is_newline(size_t i) const { return is_cp(i, '\r') || is_cp(i, '\n'); }
  // Length of the run of characters of class c starting at i.
  size_t run(size_t i, CharClass c) const {
    size_t j = i;
    while (is(j, c)) ++j;
    return j - i;
  }
};

Chars decode(std::string_view text) {
  Chars t;
  for (size_t pos = 0; pos < text.size();) {
    const Utf8Char u = decode_utf8(text, pos);
    t.cp.push_back(u.cp);
    t.cls.push_back(char_class(u.cp));
    t.offset.push_back(pos);
    pos += u.len;
  }
  t.offset.push_back(text.size());
  return t;
}

uint32_t fold_ascii(uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

// 's|'t|'re|'ve|'m|'ll|'d, optionally case-insensitive. Under (?i) Unicode simple case
// folding also makes U+017F (long s) match 's'; no other letter involved has such a twin.
size_t match_contraction(const Chars& t, size_t i, bool ignore_case) {
  if (!t.is_cp(i, '\'') || i + 1 >= t.size()) return 0;
  auto at = [&](size_t k) -> uint32_t {
    if (k >= t.size()) return 0;
    const uint32_t c = t.cp[k];
    if (!ignore_case) return c;
    return c == 0x17F ? 's' : fold_ascii(c);
  };
  const uint32_t a = at(i + 1), b = at(i + 2);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// " ?X+" where X is a class: an optional leading space, then one or more X.
size_t match_space_then_run(const Chars& t, size_t i, CharClass c) {
  if (t.is_cp(i, ' ') && t.is(i + 1, c)) return 1 + t.run(i + 1, c);
  return t.run(i, c);
}

// \s+(?!\S): the whitespace run, or all but its last character when a non-space
// follows (the lookahead then sees that last whitespace); fails on a single space
// before a non-space.
size_t match_spaces_not_before_nonspace(const Chars& t, size_t i) {
  const size_t n = t.run(i, CharClass::Space);
  if (n == 0) return 0;
  if (i + n == t.size()) return n;
  return n - 1;  // 0 when n == 1: no match
}

// \s*[\r\n]+: ends right after the last \r or \n of the whitespace run at i.
size_t match_spaces_to_newline(const Chars& t, size_t i) {
  const size_t n = t.run(i, CharClass::Space);
  for (size_t k = n; k > 0; --k)
    if (t.is_newline(i + k - 1)) return k;
  return 0;
}

size_t match_gpt2(const Chars& t, size_t i) {
  if (size_t n = match_contraction(t, i, false)) return n;
  if (size_t n = match_space_then_run(t, i, CharClass::Letter)) return n;
  if (size_t n = match_space_then_run(t, i, CharClass::Number)) return n;
  if (size_t n = match_space_then_run(t, i, CharClass::Other)) return n;
  if (size_t n = match_spaces_not_before_nonspace(t, i)) return n;
  return t.run(i, CharClass::Space);
}

// Llama 3 (max_digits 3) and Qwen2 (max_digits 1).
size_t match_llama3(const Chars& t, size_t i, size_t max_digits) {
  if (size_t n = match_contraction(t, i, true)) return n;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (t.is(i, CharClass::Letter)) return t.run(i, CharClass::Letter);
  if (i < t.size() && !t.is_newline(i) && !t.is(i, CharClass::Number) && t.is(i + 1, CharClass::Letter))
    return 1 + t.run(i + 1, CharClass::Letter);
  // \p{N}{1,3}
  if (size_t n = t.run(i, CharClass::Number)) return n < max_digits ? n : max_digits;
  // ?[^\s\p{L}\p{N}]+[\r\n]*
  if (size_t n = match_space_then_run(t, i, CharClass::Other)) {
    while (t.is_newline(i + n)) ++n;
    return n;
  }
  if (size_t n = match_spaces_to_newline(t, i)) return n;
  if (size_t n = match_spaces_not_before_nonspace(t, i)) return n;
  return t.run(i, CharClass::Space);
}

}  // namespace

const std::string& pretokenizer_regex(PreTokenizer kind) {
  switch (kind) {
    case PreTokenizer::Llama3: return kLlama3Regex;
    case PreTokenizer::Qwen2: return kQwen2Regex;
    case PreTokenizer::Gpt2: break;
  }
  return kGpt2Regex;
}

std::optional<PreTokenizer> pretokenizer_from_regex(std::string_view regex) {
  for (PreTokenizer k : {PreTokenizer::Gpt2, PreTokenizer::Llama3, PreTokenizer::Qwen2})
    if (regex == pretokenizer_regex(k)) return k;
  return std::nullopt;
}

const char* pretokenizer_name(PreTokenizer kind) {
  switch (kind) {
    case PreTokenizer::Llama3: return "llama3";
    case PreTokenizer::Qwen2: return "qwen2";
    case PreTokenizer::Gpt2: break;
  }
  return "gpt2";
}

std::vector<std::string_view> pretokenize(std::string_view text, PreTokenizer kind) {
  const Chars t = decode(text);
  std::vector<std::string_view> out;
  size_t unmatched = 0;  // start of a pending run of characters no alternative matched
  auto piece = [&](size_t a, size_t b) { out.push_back(text.substr(t.offset[a], t.offset[b] - t.offset[a])); };
  for (size_t i = 0; i < t.size();) {
    size_t n = 0;
    switch (kind) {
      case PreTokenizer::Gpt2: n = match_gpt2(t, i); break;
      case PreTokenizer::Llama3: n = match_llama3(t, i, 3); break;
      case PreTokenizer::Qwen2: n = match_llama3(t, i, 1); break;
    }
    if (n == 0) {
      ++i;
      continue;
    }
    if (unmatched < i) piece(unmatched, i);
    piece(i, i + n);
    i += n;
    unmatched = i;
  }
  if (unmatched < t.size()) piece(unmatched, t.size());
  return out;
}

}  // namespace sr
