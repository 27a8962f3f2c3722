// One tokenizer interface for the two BPE families, whatever file they come from:
//   - SentencePiece-style BPE: a SentencePiece `tokenizer.model`, a llama2.c
//     `tokenizer.bin`, or GGUF metadata with tokenizer.ggml.model "llama";
//   - byte-level BPE (GPT-2, Llama 3, Qwen2): a Hugging Face `tokenizer.json`, or GGUF
//     metadata with tokenizer.ggml.model "gpt2". Encoding is in byte_level_bpe.h.
//
// SentencePiece encoding (identical in sentencepiece's bpe_model and llama.cpp's SPM
// tokenizer):
//   1. optionally collapse/strip spaces (remove_extra_whitespaces), prepend one
//      space (add_dummy_prefix), write every space as U+2581 "▁";
//   2. split into UTF-8 characters;
//   3. repeatedly merge the adjacent pair whose concatenation is a vocabulary
//      piece with the highest score (ties: the leftmost pair);
//   4. a symbol that is not a piece becomes its UTF-8 bytes as <0xXX> tokens
//      (byte fallback), or <unk> when the vocabulary has no byte tokens.
// BOS/EOS are never produced by encode(); encode_with_bos() adds BOS when the
// model's configuration says so and the vocabulary has one (bos_id >= 0; Qwen2's
// byte-level vocabularies have none).
//
// Not handled: SentencePiece *unigram* models and non-identity normalizers are
// rejected by the loaders; so are tokenizer.json files that are not byte-level BPE
// (docs/tokenizers.md lists what read_hf_tokenizer_json accepts).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/pretokenize.h"

namespace sr {

class ByteLevelBpe;

enum class PieceKind : uint8_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

enum class TokenizerModel : uint8_t { SentencePiece, ByteLevelBpe };

// Pieces are indexed by token id. For ByteLevelBpe:
//   - pieces are the byte-level spellings (GPT-2's bytes_to_unicode: "Ġ" for a space),
//     except added tokens, which hold their text as is ("<|endoftext|>");
//   - the added tokens are the pieces of kind Control (special: matched in the text,
//     skipped by decode) and UserDefined (not special: matched and decoded);
//   - ids missing from the file are filled with unused "[PAD<id>]" pieces (kind Unused);
//   - scores are all 0 (merge order is `merges`), unk_id is -1.
struct Vocabulary {
  std::vector<std::string> pieces;  // "▁" (U+2581) for spaces; byte pieces spelled "<0x0A>"
  std::vector<float> scores;        // merge priority: higher merges first
  std::vector<PieceKind> kinds;
  int32_t unk_id = 0, bos_id = 1, eos_id = 2;  // -1: none
  bool add_bos = true;
  // SentencePiece: always prepend a space. ByteLevelBpe: ByteLevel's add_prefix_space,
  // prepend a space to each stretch of text between added tokens unless it starts with one.
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = false;
  std::string source;               // file it was read from, for messages

  TokenizerModel model = TokenizerModel::SentencePiece;
  // ByteLevelBpe only:
  std::vector<std::pair<std::string, std::string>> merges;  // rank = index; lower merges first
  PreTokenizer pre = PreTokenizer::Gpt2;
  bool ignore_merges = false;  // a pre-token that is itself a token is not merged (Llama 3)
};

class Tokenizer {
 public:
  // REQUIRES: pieces, scores and kinds have the same length > 0. Throws if a
  // special id is out of range, or (ByteLevelBpe) a merge's parts or result are not
  // tokens.
  explicit Tokenizer(Vocabulary vocab);

  std::vector<int32_t> encode(std::string_view text) const;
  std::vector<int32_t> encode_with_bos(std::string_view text) const;
  std::string decode(const std::vector<int32_t>& ids) const;
  std::string piece(int32_t id) const;  // raw piece text; throws if id is out of range

  int32_t vocab_size() const { return int32_t(vocab_.pieces.size()); }
  int32_t bos_id() const { return vocab_.bos_id; }
  int32_t eos_id() const { return vocab_.eos_id; }
  // True when encode_with_bos() prepends BOS: configured and the vocabulary has one.
  bool add_bos() const { return vocab_.add_bos && vocab_.bos_id >= 0; }
  const Vocabulary& vocabulary() const { return vocab_; }

 private:
  std::string normalize(std::string_view text) const;
  void emit_symbol(std::string_view sym, std::vector<int32_t>& out) const;

  Vocabulary vocab_;
  std::unordered_map<std::string, int32_t> ids_;  // piece -> id (first occurrence wins)
  int32_t byte_ids_[256];                          // <0xXX> -> id, -1 if absent
  std::shared_ptr<const ByteLevelBpe> bpe_;        // set for TokenizerModel::ByteLevelBpe
};

// Loaders. Each throws sr::Error naming the file on malformed input.
Vocabulary read_sentencepiece_model(const std::string& path);     // tokenizer.model (protobuf)
Vocabulary read_llama2c_vocabulary(const std::string& path, int32_t vocab_size);  // tokenizer.bin
// A Hugging Face tokenizer.json with a byte-level BPE model, plus the
// tokenizer_config.json beside it when present (BOS/EOS and add_bos_token). What is
// accepted and refused: docs/tokenizers.md.
Vocabulary read_hf_tokenizer_json(const std::string& path);

}  // namespace sr
