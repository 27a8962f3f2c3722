// The UTF-8 check every text input goes through (io/text.h check_utf8), checked against
// a straightforward reference decoder (RFC 3629: no overlongs, no surrogates, <= U+10FFFF);
// then the --text / --dataset readers (read_documents, .txt and .jsonl) on the same bytes.
#include <cstdlib>

#include "fuzz_util.h"
#include "io/text.h"

namespace {

bool reference_valid(const uint8_t* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    const uint8_t c = s[i];
    if (c < 0x80) { ++i; continue; }
    size_t len;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return false;
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  bool accepted = true;
  try {
    sr::check_utf8(sr::fuzz::as_view(data, size), "fuzz");
  } catch (const sr::Error&) {
    accepted = false;
  }
  if (accepted != reference_valid(data, size)) std::abort();  // the check disagrees with RFC 3629
  // The readers of --text / --dataset files: plain text, and JSON lines with a "text" field.
  const std::string_view text = sr::fuzz::as_view(data, size);
  sr::fuzz::expect_ok_or_error([&] { (void)sr::read_documents(sr::fuzz::write_file("text.txt", text)); });
  sr::fuzz::expect_ok_or_error([&] { (void)sr::read_documents(sr::fuzz::write_file("text.jsonl", text)); });
  return 0;
}
