// Byte-level BPE encoding and decoding (contract in byte_level_bpe.h).
#include "tokenizer/byte_level_bpe.h"

#include <algorithm>
#include <array>
#include <optional>

#include "common/error.h"
#include "tokenizer/bpe_merge.h"
#include "tokenizer/unicode_classes.h"

namespace sr {
namespace {

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  } else {
    s += char(0xE0 | (cp >> 12));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

// GPT-2's bytes_to_unicode() (encoder.py), as UTF-8 strings, and its inverse.
struct ByteTable {
  std::array<std::string, 256> to_char;
  std::unordered_map<uint32_t, uint8_t> to_byte;  // code point -> byte
  ByteTable() {
    uint32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      const uint32_t cp = printable ? uint32_t(b) : next++;
      to_char[size_t(b)] = utf8(cp);
      to_byte[cp] = uint8_t(b);
    }
  }
};

const ByteTable& byte_table() {
  static const ByteTable t;
  return t;
}

}  // namespace

const std::string& byte_to_unicode(uint8_t b) { return byte_table().to_char[b]; }

std::string bytes_to_unicode(std::string_view bytes) {
  std::string s;
  s.reserve(bytes.size() * 2);
  for (char c : bytes) s += byte_to_unicode(static_cast<uint8_t>(c));
  return s;
}

ByteLevelBpe::ByteLevelBpe(const Vocabulary& v)
    : pieces_(v.pieces), kinds_(v.kinds), source_(v.source), pre_(v.pre), ignore_merges_(v.ignore_merges),
      add_prefix_space_(v.add_dummy_prefix) {
  for (size_t i = 0; i < v.pieces.size(); ++i) {
    const PieceKind k = v.kinds[i];
    if (k == PieceKind::Unused) continue;  // "[PAD<i>]" fillers of holes in the id space
    ids_.emplace(v.pieces[i], int32_t(i));
    if ((k == PieceKind::Control || k == PieceKind::UserDefined) && !v.pieces[i].empty()) {
      added_.emplace(v.pieces[i], int32_t(i));
      added_first_byte_[static_cast<uint8_t>(v.pieces[i][0])] = true;
      added_lengths_.push_back(v.pieces[i].size());
    }
  }
  std::sort(added_lengths_.rbegin(), added_lengths_.rend());
  added_lengths_.erase(std::unique(added_lengths_.begin(), added_lengths_.end()), added_lengths_.end());
  ranks_.reserve(v.merges.size());
  for (size_t r = 0; r < v.merges.size(); ++r) {
    const auto& [a, b] = v.merges[r];
    SR_CHECK(ids_.count(a) && ids_.count(b), "[tokenizer] ", v.source, ": merges[", r, "] \"", a, " ", b,
             "\": ", ids_.count(a) ? b : a, " is not a token");
    SR_CHECK(ids_.count(a + b), "[tokenizer] ", v.source, ": merges[", r, "] \"", a, " ", b, "\": the result ",
             a + b, " is not a token");
    ranks_.emplace(a + " " + b, int32_t(r));  // a, b never contain a space (0x20 maps to "Ġ")
  }
}

int32_t ByteLevelBpe::token_id(const std::string& symbol) const {
  auto it = ids_.find(symbol);
  SR_CHECK(it != ids_.end(), "[tokenizer] ", source_, ": BPE produced \"", symbol,
           "\", which is not a token (inconsistent vocabulary and merges)");
  return it->second;
}

std::vector<int32_t> ByteLevelBpe::encode(std::string_view text) const {
  std::vector<int32_t> out;
  size_t stretch = 0;  // start of the text not yet encoded
  for (size_t pos = 0; pos < text.size(); ++pos) {
    if (!added_first_byte_[static_cast<uint8_t>(text[pos])]) continue;
    for (size_t len : added_lengths_) {
      if (len > text.size() - pos) continue;
      auto it = added_.find(std::string(text.substr(pos, len)));
      if (it == added_.end()) continue;
      if (stretch < pos) encode_stretch(text.substr(stretch, pos - stretch), out);
      out.push_back(it->second);
      stretch = pos + len;
      pos = stretch - 1;  // the loop's ++pos resumes right after the token (len >= 1)
      break;
    }
  }
  if (stretch < text.size()) encode_stretch(text.substr(stretch), out);
  return out;
}

void ByteLevelBpe::encode_stretch(std::string_view text, std::vector<int32_t>& out) const {
  std::string prefixed;
  if (add_prefix_space_ && text[0] != ' ') {
    prefixed = " " + std::string(text);
    text = prefixed;
  }
  for (std::string_view p : pretokenize(text, pre_)) encode_pretoken(p, out);
}

void ByteLevelBpe::encode_pretoken(std::string_view pretoken, std::vector<int32_t>& out) const {
  const std::string s = bytes_to_unicode(pretoken);
  if (ignore_merges_) {
    auto it = ids_.find(s);
    if (it != ids_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  // One symbol per original byte (each is one mapped character of 1 or 2 UTF-8 bytes).
  std::vector<size_t> lengths;
  for (size_t i = 0; i < s.size();) {
    lengths.push_back(decode_utf8(s, i).len);
    i += lengths.back();
  }
  // Priority: minus the merge's rank (the lowest rank merges first).
  std::string key;
  auto rank = [&](std::string_view left, std::string_view right) -> std::optional<double> {
    key.assign(left);
    key += ' ';
    key.append(right);
    auto it = ranks_.find(key);
    if (it == ranks_.end()) return std::nullopt;
    return -double(it->second);
  };
  for (std::string_view sym : bpe_merge(s, lengths, rank)) out.push_back(token_id(std::string(sym)));
}

std::string ByteLevelBpe::decode(const std::vector<int32_t>& ids) const {
  const ByteTable& t = byte_table();
  std::string out;
  for (int32_t id : ids) {
    SR_CHECK(id >= 0 && size_t(id) < pieces_.size(), "[tokenizer] token id ", id, " outside the vocabulary of ",
             pieces_.size());
    const PieceKind k = kinds_[size_t(id)];
    if (k == PieceKind::Control || k == PieceKind::Unused) continue;
    const std::string& p = pieces_[size_t(id)];
    std::string bytes;
    bool mapped = true;
    for (size_t i = 0; i < p.size() && mapped;) {
      const Utf8Char u = decode_utf8(p, i);
      auto it = t.to_byte.find(u.cp);
      if (it == t.to_byte.end()) mapped = false;
      else bytes += char(it->second);
      i += u.len;
    }
    out += mapped ? bytes : p;
  }
  return out;
}

}  // namespace sr
