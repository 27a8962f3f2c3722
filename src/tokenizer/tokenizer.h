// One tokenizer interface for SentencePiece-style BPE vocabularies, whatever file
// they come from: a SentencePiece `tokenizer.model`, a llama2.c `tokenizer.bin`,
// or the `tokenizer.ggml.*` metadata of a GGUF file.
//
// Encoding (identical in sentencepiece's bpe_model and llama.cpp's SPM tokenizer):
//   1. optionally collapse/strip spaces (remove_extra_whitespaces), prepend one
//      space (add_dummy_prefix), write every space as U+2581 "▁";
//   2. split into UTF-8 characters;
//   3. repeatedly merge the adjacent pair whose concatenation is a vocabulary
//      piece with the highest score (ties: the leftmost pair);
//   4. a symbol that is not a piece becomes its UTF-8 bytes as <0xXX> tokens
//      (byte fallback), or <unk> when the vocabulary has no byte tokens.
// BOS/EOS are never produced by encode(); encode_with_bos() adds BOS when the
// model's configuration says so.
//
// Not handled: SentencePiece *unigram* models and non-identity normalizers are
// rejected by the loaders; Hugging Face tokenizer.json (byte-level BPE) is a
// separate issue.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sr {

enum class PieceKind : uint8_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

struct Vocabulary {
  std::vector<std::string> pieces;  // "▁" (U+2581) for spaces; byte pieces spelled "<0x0A>"
  std::vector<float> scores;        // merge priority: higher merges first
  std::vector<PieceKind> kinds;
  int32_t unk_id = 0, bos_id = 1, eos_id = 2;
  bool add_bos = true;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = false;
  std::string source;               // file it was read from, for messages
};

class Tokenizer {
 public:
  // REQUIRES: pieces, scores and kinds have the same length > 0. Throws if a
  // special id is out of range.
  explicit Tokenizer(Vocabulary vocab);

  std::vector<int32_t> encode(std::string_view text) const;
  std::vector<int32_t> encode_with_bos(std::string_view text) const;
  std::string decode(const std::vector<int32_t>& ids) const;
  std::string piece(int32_t id) const;  // raw piece text; throws if id is out of range

  int32_t vocab_size() const { return int32_t(vocab_.pieces.size()); }
  int32_t bos_id() const { return vocab_.bos_id; }
  int32_t eos_id() const { return vocab_.eos_id; }
  bool add_bos() const { return vocab_.add_bos; }
  const Vocabulary& vocabulary() const { return vocab_; }

 private:
  std::string normalize(std::string_view text) const;
  void emit_symbol(std::string_view sym, std::vector<int32_t>& out) const;

  Vocabulary vocab_;
  std::unordered_map<std::string, int32_t> ids_;  // piece -> id (first occurrence wins)
  int32_t byte_ids_[256];                          // <0xXX> -> id, -1 if absent
};

// Loaders. Each throws sr::Error naming the file on malformed input.
Vocabulary read_sentencepiece_model(const std::string& path);     // tokenizer.model (protobuf)
Vocabulary read_llama2c_vocabulary(const std::string& path, int32_t vocab_size);  // tokenizer.bin

}  // namespace sr
