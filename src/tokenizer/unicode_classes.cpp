// Character classes and UTF-8 decoding (contract in unicode_classes.h).
#include "tokenizer/unicode_classes.h"

#include <algorithm>

namespace sr {
namespace {

bool in_ranges(uint32_t cp, const CodeRange* r, size_t n) {
  const CodeRange* end = r + n;
  // First range whose last >= cp; the tables are sorted and disjoint.
  const CodeRange* it = std::lower_bound(r, end, cp, [](const CodeRange& a, uint32_t c) { return a.last < c; });
  return it != end && it->first <= cp;
}

}  // namespace

CharClass char_class(uint32_t cp) {
  if (cp < 0x80) {  // fast path for ASCII
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return CharClass::Letter;
    if (cp >= '0' && cp <= '9') return CharClass::Number;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return CharClass::Space;
    return CharClass::Other;
  }
  if (cp == kInvalidCodePoint) return CharClass::Other;
  if (in_ranges(cp, kLetterRanges, kLetterRangeCount)) return CharClass::Letter;
  if (in_ranges(cp, kNumberRanges, kNumberRangeCount)) return CharClass::Number;
  if (in_ranges(cp, kSpaceRanges, kSpaceRangeCount)) return CharClass::Space;
  return CharClass::Other;
}

Utf8Char decode_utf8(std::string_view s, size_t pos) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = byte(pos);
  if (c < 0x80) return {c, 1};
  uint32_t len, cp, min;
  if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
  else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
  else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
  else return {kInvalidCodePoint, 1};
  if (pos + len > s.size()) return {kInvalidCodePoint, 1};
  for (uint32_t i = 1; i < len; ++i) {
    const unsigned char b = byte(pos + i);
    if ((b & 0xC0) != 0x80) return {kInvalidCodePoint, 1};
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {kInvalidCodePoint, 1};
  return {cp, len};
}

}  // namespace sr
