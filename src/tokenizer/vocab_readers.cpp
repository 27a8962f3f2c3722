// Readers that turn tokenizer files into a Vocabulary (see tokenizer.h).
#include <cstring>

#include "common/error.h"
#include "io/llama2c.h"
#include "io/mapped_file.h"
#include "tokenizer/tokenizer.h"

namespace sr {
namespace {

// Minimal protobuf wire-format reader: SentencePiece's ModelProto uses only
// varints (wire type 0), 32-bit floats (5), 64-bit (1) and length-delimited
// fields (2). Every read is bounds-checked against the message.
class ProtoReader {
 public:
  ProtoReader(const uint8_t* p, size_t n, const std::string& file) : p_(p), end_(p + n), file_(file) {}
  bool done() const { return p_ >= end_; }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      need(1);
      const uint8_t b = *p_++;
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    fail("[tokenizer] ", file_, ": malformed varint (not a SentencePiece model?)");
  }
  // Reads a field key; returns {field number, wire type}.
  std::pair<uint32_t, uint32_t> key() {
    const uint64_t k = varint();
    return {uint32_t(k >> 3), uint32_t(k & 7)};
  }
  std::string_view bytes() {
    const uint64_t n = varint();
    need(n);
    std::string_view s(reinterpret_cast<const char*>(p_), size_t(n));
    p_ += n;
    return s;
  }
  float fixed32_float() {
    need(4);
    float f;
    std::memcpy(&f, p_, 4);
    p_ += 4;
    return f;
  }
  void skip(uint32_t wire) {
    switch (wire) {
      case 0: varint(); break;
      case 1: need(8); p_ += 8; break;
      case 2: bytes(); break;
      case 5: need(4); p_ += 4; break;
      default: fail("[tokenizer] ", file_, ": unsupported protobuf wire type ", wire, " (not a SentencePiece model?)");
    }
  }

 private:
  void need(uint64_t n) const {
    SR_CHECK(n <= uint64_t(end_ - p_), "[tokenizer] ", file_, ": truncated protobuf message");
  }
  const uint8_t* p_;
  const uint8_t* end_;
  const std::string& file_;
};

struct Piece { std::string text; float score = 0; PieceKind kind = PieceKind::Normal; };

Piece parse_piece(std::string_view msg, const std::string& file) {
  ProtoReader r(reinterpret_cast<const uint8_t*>(msg.data()), msg.size(), file);
  Piece p;
  while (!r.done()) {
    auto [field, wire] = r.key();
    if (field == 1 && wire == 2) p.text = std::string(r.bytes());
    else if (field == 2 && wire == 5) p.score = r.fixed32_float();
    else if (field == 3 && wire == 0) p.kind = PieceKind(r.varint());
    else r.skip(wire);
  }
  return p;
}

// TrainerSpec fields we need: model_type (3; 1 unigram, 2 bpe), unk/bos/eos ids (40/41/42).
void parse_trainer_spec(std::string_view msg, const std::string& file, Vocabulary& v, int& model_type) {
  ProtoReader r(reinterpret_cast<const uint8_t*>(msg.data()), msg.size(), file);
  while (!r.done()) {
    auto [field, wire] = r.key();
    if (wire != 0) { r.skip(wire); continue; }
    const int64_t val = int64_t(r.varint());
    if (field == 3) model_type = int(val);
    else if (field == 40) v.unk_id = int32_t(val);
    else if (field == 41) v.bos_id = int32_t(val);
    else if (field == 42) v.eos_id = int32_t(val);
  }
}

// NormalizerSpec: name (1), precompiled_charsmap (2), add_dummy_prefix (3, default true),
// remove_extra_whitespaces (4, default true).
void parse_normalizer_spec(std::string_view msg, const std::string& file, Vocabulary& v, std::string& name,
                           bool& has_charsmap) {
  ProtoReader r(reinterpret_cast<const uint8_t*>(msg.data()), msg.size(), file);
  while (!r.done()) {
    auto [field, wire] = r.key();
    if (field == 1 && wire == 2) name = std::string(r.bytes());
    else if (field == 2 && wire == 2) has_charsmap = !r.bytes().empty();
    else if (field == 3 && wire == 0) v.add_dummy_prefix = r.varint() != 0;
    else if (field == 4 && wire == 0) v.remove_extra_whitespaces = r.varint() != 0;
    else r.skip(wire);
  }
}

}  // namespace

Vocabulary read_sentencepiece_model(const std::string& path) {
  MappedFile f(path);
  Vocabulary v;
  v.source = path;
  v.remove_extra_whitespaces = true;  // proto defaults
  int model_type = 1;                 // proto default: unigram
  std::string norm_name;
  bool has_charsmap = false;
  ProtoReader r(f.data(), size_t(f.size()), path);
  while (!r.done()) {
    auto [field, wire] = r.key();
    if (field == 1 && wire == 2) {
      Piece p = parse_piece(r.bytes(), path);
      v.pieces.push_back(std::move(p.text));
      v.scores.push_back(p.score);
      v.kinds.push_back(p.kind);
    } else if (field == 2 && wire == 2) {
      parse_trainer_spec(r.bytes(), path, v, model_type);
    } else if (field == 3 && wire == 2) {
      parse_normalizer_spec(r.bytes(), path, v, norm_name, has_charsmap);
    } else {
      r.skip(wire);
    }
  }
  SR_CHECK(!v.pieces.empty(), "[tokenizer] ", path, ": no pieces (not a SentencePiece model?)");
  SR_CHECK(model_type == 2, "[tokenizer] ", path, ": SentencePiece model type ", model_type,
           " is not supported (only BPE, type 2; unigram models such as T5's are not)");
  SR_CHECK(norm_name.empty() || norm_name == "identity" || !has_charsmap, "[tokenizer] ", path,
           ": normalizer '", norm_name, "' is not supported (only 'identity')");
  return v;
}

Vocabulary read_llama2c_vocabulary(const std::string& path, int32_t vocab_size) {
  Llama2cVocab raw = read_llama2c_tokenizer(path, vocab_size);
  // The Vocabulary defaults are llama2.c's: unk 0, BOS 1, EOS 2 (run.c hard-codes them), a dummy
  // prefix, no whitespace collapsing.
  Vocabulary v;
  v.source = path;
  for (int32_t i = 0; i < vocab_size; ++i) {
    std::string p = raw.pieces[size_t(i)];
    PieceKind kind = PieceKind::Normal;
    if (i == 0) kind = PieceKind::Unknown;
    else if (i == 1 || i == 2) kind = PieceKind::Control;
    else if (p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>') kind = PieceKind::Byte;
    // llama2.c's export writes SentencePiece's U+2581 as a plain space: undo it.
    std::string q;
    for (char c : p) q += (c == ' ') ? std::string("\xE2\x96\x81") : std::string(1, c);
    v.pieces.push_back(std::move(q));
    v.scores.push_back(raw.scores[size_t(i)]);
    v.kinds.push_back(kind);
  }
  return v;
}

}  // namespace sr
