// Byte-level BPE (GPT-2, Llama 3, Qwen2): the encoder behind Tokenizer for a
// Vocabulary whose model is TokenizerModel::ByteLevelBpe (tokenizer.h), matching
// Hugging Face's tokenizers library:
//   1. split the text on added tokens (pieces of kind Control = special, or
//      UserDefined = not special): at each position the longest added token that
//      starts there wins; it becomes its id directly;
//   2. each stretch between added tokens: prepend a space if add_dummy_prefix
//      (ByteLevel add_prefix_space) and it does not start with one, then split it with
//      the pre-tokenizer regex (pretokenize.h);
//   3. each pre-token: its UTF-8 bytes become characters through GPT-2's
//      bytes_to_unicode table; with ignore_merges a pre-token that is itself a token is
//      emitted as is; otherwise start from one symbol per byte and repeatedly merge the
//      adjacent pair with the lowest merge rank (ties: leftmost) while any pair is a
//      merge; each final symbol is a token.
// Decoding concatenates the tokens (skipping Control and Unused ones) and maps each
// character back to its byte; a token with a character outside the table contributes
// its own UTF-8 bytes (as Hugging Face's ByteLevel decoder does). Bytes are returned as
// they are: invalid UTF-8 is not replaced by U+FFFD. Spaces added by add_prefix_space
// stay in the decoded text (as with Hugging Face's ByteLevel decoder).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"

namespace sr {

// GPT-2's bytes_to_unicode: byte b as a character (UTF-8). Bytes 33..126, 161..172 and
// 174..255 are themselves; the other 68 map to U+0100.. in increasing byte order
// (space 0x20 -> U+0120 "Ġ", newline 0x0A -> U+010A "Ċ").
const std::string& byte_to_unicode(uint8_t b);
// The byte-level spelling of raw bytes: byte_to_unicode of each.
std::string bytes_to_unicode(std::string_view bytes);

class ByteLevelBpe {
 public:
  // REQUIRES: v.model == TokenizerModel::ByteLevelBpe. Throws sr::Error naming
  // v.source when a merge's parts or result are not tokens.
  explicit ByteLevelBpe(const Vocabulary& v);

  // Throws sr::Error if a final symbol is not a token (an inconsistent vocabulary).
  std::vector<int32_t> encode(std::string_view text) const;
  std::string decode(const std::vector<int32_t>& ids) const;

 private:
  void encode_stretch(std::string_view text, std::vector<int32_t>& out) const;
  void encode_pretoken(std::string_view pretoken, std::vector<int32_t>& out) const;
  int32_t token_id(const std::string& symbol) const;

  // Copies of what encoding and decoding need (a Tokenizer may be copied or moved).
  std::vector<std::string> pieces_;
  std::vector<PieceKind> kinds_;
  std::string source_;
  PreTokenizer pre_;
  bool ignore_merges_, add_prefix_space_;
  std::unordered_map<std::string, int32_t> ids_;    // token -> id (first occurrence wins)
  std::unordered_map<std::string, int32_t> ranks_;  // "a b" -> merge rank
  std::unordered_map<std::string, int32_t> added_;  // added-token content -> id
  std::vector<size_t> added_lengths_;               // distinct content lengths, longest first
  bool added_first_byte_[256] = {};
};

}  // namespace sr
