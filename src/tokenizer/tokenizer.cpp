#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <optional>

#include "common/error.h"
#include "common/strings.h"
#include "tokenizer/bpe_merge.h"
#include "tokenizer/byte_level_bpe.h"

namespace sr {
namespace {

const std::string kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

}  // namespace

Tokenizer::Tokenizer(Vocabulary vocab) : vocab_(std::move(vocab)) {
  const size_t n = vocab_.pieces.size();
  SR_CHECK(n > 0 && vocab_.scores.size() == n && vocab_.kinds.size() == n, "[tokenizer] ",
           vocab_.source, ": inconsistent vocabulary (", n, " pieces, ", vocab_.scores.size(), " scores, ",
           vocab_.kinds.size(), " kinds)");
  for (int32_t id : {vocab_.unk_id, vocab_.bos_id, vocab_.eos_id})
    SR_CHECK(id >= -1 && id < int32_t(n), "[tokenizer] ", vocab_.source, ": special token id ", id,
             " outside the vocabulary of ", n);
  for (int& b : byte_ids_) b = -1;
  if (vocab_.model == TokenizerModel::ByteLevelBpe) {
    bpe_ = std::make_shared<const ByteLevelBpe>(vocab_);
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    const std::string& p = vocab_.pieces[i];
    if (vocab_.kinds[i] == PieceKind::Byte) {
      unsigned v = 0;
      if (p.size() == 6 && std::sscanf(p.c_str(), "<0x%02X>", &v) == 1 && v < 256) byte_ids_[v] = int32_t(i);
      continue;
    }
    // Control/unknown pieces ("<s>") never come out of merging characters of text.
    if (vocab_.kinds[i] == PieceKind::Control || vocab_.kinds[i] == PieceKind::Unknown) continue;
    ids_.emplace(p, int32_t(i));
  }
}

std::string Tokenizer::normalize(std::string_view text) const {
  std::string s;
  s.reserve(text.size() + 8);
  if (vocab_.remove_extra_whitespaces) {
    bool pending_space = false;
    for (char c : text) {
      if (c == ' ') { pending_space = !s.empty(); continue; }
      if (pending_space) s += ' ';
      pending_space = false;
      s += c;
    }
  } else {
    s.assign(text);
  }
  if (vocab_.add_dummy_prefix && !s.empty()) s.insert(s.begin(), ' ');
  std::string out;
  out.reserve(s.size() * 2);
  for (char c : s) {
    if (c == ' ') out += kSpace;
    else out += c;
  }
  return out;
}

void Tokenizer::emit_symbol(std::string_view sym, std::vector<int32_t>& out) const {
  auto it = ids_.find(std::string(sym));
  if (it != ids_.end()) {
    out.push_back(it->second);
    return;
  }
  for (unsigned char c : sym) {
    const int32_t b = byte_ids_[c];
    out.push_back(b >= 0 ? b : vocab_.unk_id);
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  if (bpe_) return bpe_->encode(text);
  const std::string s = normalize(text);
  std::vector<size_t> lengths;  // one symbol per UTF-8 character
  for (size_t i = 0; i < s.size();) {
    lengths.push_back(std::min(utf8_len(static_cast<unsigned char>(s[i])), s.size() - i));
    i += lengths.back();
  }
  // Priority: the score of the merged piece (left and right are adjacent in s).
  auto score = [&](std::string_view left, std::string_view right) -> std::optional<double> {
    auto it = ids_.find(std::string(left.data(), left.size() + right.size()));
    if (it == ids_.end()) return std::nullopt;
    return double(vocab_.scores[size_t(it->second)]);
  };
  std::vector<int32_t> out;
  for (std::string_view sym : bpe_merge(s, lengths, score)) emit_symbol(sym, out);
  return out;
}

std::vector<int32_t> Tokenizer::encode_with_bos(std::string_view text) const {
  std::vector<int32_t> ids = encode(text);
  if (add_bos()) ids.insert(ids.begin(), vocab_.bos_id);
  return ids;
}

std::string Tokenizer::piece(int32_t id) const {
  SR_CHECK(id >= 0 && id < vocab_size(), "[tokenizer] token id ", id, " outside the vocabulary of ",
           vocab_size());
  return vocab_.pieces[size_t(id)];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  if (bpe_) return bpe_->decode(ids);
  std::string out;
  for (int32_t id : ids) {
    const std::string p = piece(id);
    const PieceKind k = vocab_.kinds[size_t(id)];
    if (k == PieceKind::Control || k == PieceKind::Unknown) continue;
    if (k == PieceKind::Byte) {
      unsigned v = 0;
      if (std::sscanf(p.c_str(), "<0x%02X>", &v) == 1) out += char(v);
      continue;
    }
    for (size_t i = 0; i < p.size();) {
      if (p.compare(i, kSpace.size(), kSpace) == 0) { out += ' '; i += kSpace.size(); }
      else out += p[i++];
    }
  }
  if (vocab_.add_dummy_prefix && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

}  // namespace sr
