// The tokenizer.ggml.* metadata of GGUF files <-> Vocabulary (tokenizer.h).
//
// Keys (llama.cpp c392e50, llama-vocab.cpp; "llama" = SentencePiece BPE, the only
// tokenizer model supported here):
//   tokenizer.ggml.model              str         "llama" (also "gpt2", "bert", "t5", ...: not supported)
//   tokenizer.ggml.tokens             arr[str]    pieces, "▁" for spaces, bytes as "<0x0A>"
//   tokenizer.ggml.scores             arr[f32]    merge priority (optional: 0)
//   tokenizer.ggml.token_type         arr[i32]    1 normal, 2 unknown, 3 control, 4 user-defined,
//                                                 5 unused, 6 byte (optional: normal; 0 = normal)
//   tokenizer.ggml.{bos,eos,unknown}_token_id  u32  (optional: 1, 2, 0)
//   tokenizer.ggml.add_bos_token      bool        (optional: true)
//   tokenizer.ggml.add_space_prefix   bool        (optional: true) -> Vocabulary::add_dummy_prefix
// llama.cpp's SPM tokenizer never collapses repeated spaces, so a vocabulary read from
// GGUF has remove_extra_whitespaces = false, and that flag is not written.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/gguf.h"
#include "io/gguf_reader.h"
#include "tokenizer/tokenizer.h"

namespace sr {

// The tokenizer stored in `r`, or nullptr with `why_not` set when the file has no
// tokenizer.ggml.* metadata or a tokenizer model other than "llama" (so that a model
// can still be opened, and the error shows only if a tokenizer is needed). Throws
// sr::Error naming the file and key on malformed metadata (wrong types, array lengths
// that differ from the token count, unknown token types, ids out of range).
std::unique_ptr<Tokenizer> read_gguf_tokenizer(const GgufReader& r, std::string& why_not);

// The metadata entries, in llama.cpp's convert order, that describe `v` as a "llama"
// (SentencePiece BPE) tokenizer: model, pre ("default"), tokens, scores, token_type,
// bos/eos/unknown ids, add_bos_token, add_eos_token (false), add_space_prefix.
std::vector<std::pair<std::string, GgufValue>> gguf_vocabulary_metadata(const Vocabulary& v);

}  // namespace sr
