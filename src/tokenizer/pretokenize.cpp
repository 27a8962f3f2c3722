// Hand-written matchers for the three pre-tokenizer regexes (contract in pretokenize.h).
// Each match_* returns the length in bytes of the match starting at byte p (a character
// boundary), or 0 when the alternative does not match there; the caller tries the
// alternatives in the regex's order, which is what a backtracking engine does at one
// position.
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

// The text as characters, decoded on the fly (no per-character arrays: calibration
// encodes whole datasets at once). Positions and lengths are in bytes.
class Text {
 public:
  explicit Text(std::string_view s) : s_(s) {}
  size_t size() const { return s_.size(); }
  Utf8Char at(size_t p) const { return decode_utf8(s_, p); }  // REQUIRES: p < size()
  size_t next(size_t p) const { return p + at(p).len; }
  bool is(size_t p, CharClass c) const { return p < size() && char_class(at(p).cp) == c; }
  bool is_byte(size_t p, char c) const { return p < size() && s_[p] == c; }
  bool is_newline(size_t p) const { return is_byte(p, '\r') || is_byte(p, '\n'); }
  // Length in bytes of the run of characters of class c starting at p.
  size_t run(size_t p, CharClass c) const {
    size_t q = p;
    while (is(q, c)) q = next(q);
    return q - p;
  }

 private:
  std::string_view s_;
};

uint32_t fold_ascii(uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

// 's|'t|'re|'ve|'m|'ll|'d, optionally case-insensitive. Under (?i) Unicode simple case
// folding also makes U+017F (long s) match 's'; no other letter involved has such a twin
// (checked against Python's regex over all code points).
size_t match_contraction(const Text& t, size_t p, bool ignore_case) {
  if (!t.is_byte(p, '\'') || p + 1 >= t.size()) return 0;
  const Utf8Char a = t.at(p + 1);
  auto fold = [&](uint32_t c) { return !ignore_case ? c : c == 0x17F ? uint32_t('s') : fold_ascii(c); };
  const uint32_t x = fold(a.cp);
  if (x == 's' || x == 't' || x == 'm' || x == 'd') return 1 + a.len;
  if (a.len != 1 || p + 2 >= t.size()) return 0;
  const uint32_t y = fold(t.at(p + 2).cp);
  if ((x == 'r' && y == 'e') || (x == 'v' && y == 'e') || (x == 'l' && y == 'l')) return 3;
  return 0;
}

// " ?X+" where X is a class: an optional leading space, then one or more X.
size_t match_space_then_run(const Text& t, size_t p, CharClass c) {
  if (t.is_byte(p, ' ') && t.is(p + 1, c)) return 1 + t.run(p + 1, c);
  return t.run(p, c);
}

// \s+(?!\S): the whitespace run, or all but its last character when a non-space
// follows (the lookahead then sees that last whitespace); fails on a single
// whitespace character before a non-space.
size_t match_spaces_not_before_nonspace(const Text& t, size_t p) {
  size_t q = p, last = p;  // last: start of the run's last character
  while (t.is(q, CharClass::Space)) {
    last = q;
    q = t.next(q);
  }
  if (q == p) return 0;
  if (q == t.size()) return q - p;
  return last - p;  // 0 when the run is one character: no match
}

// \s*[\r\n]+: ends right after the last \r or \n of the whitespace run at p.
size_t match_spaces_to_newline(const Text& t, size_t p) {
  size_t end = p;
  for (size_t q = p; t.is(q, CharClass::Space); q = t.next(q))
    if (t.is_newline(q)) end = q + 1;
  return end - p;
}

size_t match_gpt2(const Text& t, size_t p) {
  if (size_t n = match_contraction(t, p, false)) return n;
  if (size_t n = match_space_then_run(t, p, CharClass::Letter)) return n;
  if (size_t n = match_space_then_run(t, p, CharClass::Number)) return n;
  if (size_t n = match_space_then_run(t, p, CharClass::Other)) return n;
  if (size_t n = match_spaces_not_before_nonspace(t, p)) return n;
  return t.run(p, CharClass::Space);
}

// Llama 3 (max_digits 3) and Qwen2 (max_digits 1).
size_t match_llama3(const Text& t, size_t p, int max_digits) {
  if (size_t n = match_contraction(t, p, true)) return n;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (t.is(p, CharClass::Letter)) return t.run(p, CharClass::Letter);
  if (p < t.size() && !t.is_newline(p) && !t.is(p, CharClass::Number)) {
    const size_t q = t.next(p);
    if (t.is(q, CharClass::Letter)) return (q - p) + t.run(q, CharClass::Letter);
  }
  // \p{N}{1,3}
  size_t q = p;
  for (int k = 0; k < max_digits && t.is(q, CharClass::Number); ++k) q = t.next(q);
  if (q > p) return q - p;
  // ?[^\s\p{L}\p{N}]+[\r\n]*
  if (size_t n = match_space_then_run(t, p, CharClass::Other)) {
    while (t.is_newline(p + n)) ++n;
    return n;
  }
  if (size_t n = match_spaces_to_newline(t, p)) return n;
  if (size_t n = match_spaces_not_before_nonspace(t, p)) return n;
  return t.run(p, CharClass::Space);
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

std::vector<std::string_view> pretokenize(std::string_view text, PreTokenizer kind) {
  const Text t(text);
  std::vector<std::string_view> out;
  size_t unmatched = 0;  // start of a pending run of characters no alternative matched
  for (size_t p = 0; p < t.size();) {
    size_t n = 0;
    switch (kind) {
      case PreTokenizer::Gpt2: n = match_gpt2(t, p); break;
      case PreTokenizer::Llama3: n = match_llama3(t, p, 3); break;
      case PreTokenizer::Qwen2: n = match_llama3(t, p, 1); break;
    }
    if (n == 0) {
      p = t.next(p);
      continue;
    }
    if (unmatched < p) out.push_back(text.substr(unmatched, p - unmatched));
    out.push_back(text.substr(p, n));
    p += n;
    unmatched = p;
  }
  if (unmatched < t.size()) out.push_back(text.substr(unmatched));
  return out;
}

}  // namespace sr
