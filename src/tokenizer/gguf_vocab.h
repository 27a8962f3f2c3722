// The tokenizer.ggml.* metadata of GGUF files <-> Vocabulary (tokenizer.h).
//
// Keys (llama.cpp c392e50, llama-vocab.cpp). Model "llama" = SentencePiece BPE:
//   tokenizer.ggml.model              str         "llama"
//   tokenizer.ggml.tokens             arr[str]    pieces, "▁" for spaces, bytes as "<0x0A>"
//   tokenizer.ggml.scores             arr[f32]    merge priority (optional: 0)
//   tokenizer.ggml.token_type         arr[i32]    1 normal, 2 unknown, 3 control, 4 user-defined,
//                                                 5 unused, 6 byte (optional: normal; 0 = normal)
//   tokenizer.ggml.{bos,eos,unknown}_token_id  u32  (optional: 1, 2, 0)
//   tokenizer.ggml.add_bos_token      bool        (optional: true)
//   tokenizer.ggml.add_space_prefix   bool        (optional: true) -> Vocabulary::add_dummy_prefix
// llama.cpp's SPM tokenizer never collapses repeated spaces, so a vocabulary read from
// GGUF has remove_extra_whitespaces = false, and that flag is not written.
//
// Model "gpt2" = byte-level BPE (TokenizerModel::ByteLevelBpe), as convert_hf_to_gguf.py
// writes Llama 3 / Qwen2 / GPT-2:
//   tokenizer.ggml.pre                str         "llama-bpe" (also read: "llama3") -> Llama3,
//                                                 "qwen2" -> Qwen2, "gpt-2" / "default" (or
//                                                 absent) -> Gpt2; others are not supported
//   tokenizer.ggml.tokens             arr[str]    byte-level strings ("Ġthe"); added tokens as text
//   tokenizer.ggml.token_type         arr[i32]    1 normal, 3 control (special added token),
//                                                 4 user-defined (other added token), 5 unused
//   tokenizer.ggml.merges             arr[str]    "a b", rank = index (required)
//   tokenizer.ggml.{bos,eos}_token_id u32         optional: absent = none (-1)
//   tokenizer.ggml.add_bos_token      bool        (optional: true for llama-bpe, else false)
//   tokenizer.ggml.add_space_prefix   bool        (optional: false) ByteLevel add_prefix_space;
//                                                 llama.cpp's BPE tokenizer ignores it
// No scores are written or read. ignore_merges is not stored: llama.cpp derives it from
// the pre-tokenizer (true for llama-bpe), and so does the reader.
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
// tokenizer.ggml.* metadata, a tokenizer model other than "llama" or "gpt2", or a "gpt2"
// pre-tokenizer we do not implement (so that a model can still be opened, and the error
// shows only if a tokenizer is needed). Throws sr::Error naming the file and key on
// malformed metadata (wrong types, array lengths that differ from the token count,
// unknown token types, ids out of range, "gpt2" without merges or with a merge whose
// parts are not tokens).
std::unique_ptr<Tokenizer> read_gguf_tokenizer(const GgufReader& r, std::string& why_not);

// The metadata entries, in llama.cpp's convert order, that describe `v`. SentencePiece:
// a "llama" tokenizer: model, pre ("default"), tokens, scores, token_type, bos/eos/unknown
// ids, add_bos_token, add_eos_token (false), add_space_prefix. ByteLevelBpe: a "gpt2"
// tokenizer: model, pre, tokens, token_type, merges, bos/eos ids when >= 0,
// add_bos_token, add_space_prefix when set.
std::vector<std::pair<std::string, GgufValue>> gguf_vocabulary_metadata(const Vocabulary& v);

}  // namespace sr
