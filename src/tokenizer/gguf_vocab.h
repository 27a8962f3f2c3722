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
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "io/gguf.h"
#include "io/gguf_reader.h"
#include "tokenizer/tokenizer.h"

namespace sr {

// A token convert_hf_to_gguf.py's _create_vocab_sentencepiece re-types from the folder's
// added_tokens.json (user-defined) or tokenizer_config.json's added_tokens_decoder (control when
// "special" or when the text looks special: <|...|>, <pad>, <mask>, <unused...>, ...; else
// user-defined with "▁" written as " "): its piece becomes `text`, its type `kind`, its score -1000.
struct GgufAddedToken {
  int64_t id = 0;
  std::string text;
  PieceKind kind = PieceKind::UserDefined;
};

// What convert_hf_to_gguf.py's SpecialVocab (gguf-py vocab.py) adds to the tokenizer.ggml.*
// metadata: special token ids, add_<type>_token flags and the chat template. From a Hugging Face
// folder it resolves them as SpecialVocab does:
//   - tokenizer.json's post_processor (TemplateProcessing's leading/trailing special tokens and
//     separators, RobertaProcessing) sets add_bos / add_eos / add_sep (and may add "eot" when the
//     template's trailing token is not tokenizer_config.json's eos_token);
//   - with a tokenizer_config.json: the chat template (tokenizer_config's "chat_template", else
//     chat_template.jinja, else chat_template.json's "chat_template"; a list of named templates
//     keeps only its "default"), add_<type>_token booleans, and <type>_token ("text" or
//     {"content"}) looked up among tokenizer.json's added_tokens;
//   - then config.json's <type>_token_id (integers only) for the types still unset;
// types: bos, eos, unk, sep, pad, cls, mask (+ eot, eom). An id at or past `n_vocab` is skipped
// (n_vocab < 0: no limit; the converter passes the count for SentencePiece only).
// Keys: tokenizer.ggml.{bos,eos,unknown,seperator (sic),padding,cls,mask,eot,eom}_token_id,
// tokenizer.ggml.add_{bos,eos,sep}_token (the converter has no key for the other add flags),
// tokenizer.chat_template.
struct GgufSpecialVocab {
  bool known = false;                                // false: no source was read
  std::vector<std::pair<std::string, uint32_t>> ids;  // ("pad", 0), in the order resolved
  std::vector<std::pair<std::string, bool>> add;      // ("bos", true), in the order first set
  std::optional<std::string> chat_template;
  // tokenizer.ggml.add_space_prefix: LlamaModel.set_vocab writes tokenizer_config.json's
  // add_prefix_space (a boolean) when it has one (a GGUF source: its own key).
  std::optional<bool> add_space_prefix;
  // SentencePiece only (n_vocab >= 0): the re-typed tokens, in the converter's order (later wins).
  std::vector<GgufAddedToken> added_tokens;
  // The resolved id of `type`, or -1.
  int64_t id(const std::string& type) const;
};

// SpecialVocab of the folder `dir` (any of tokenizer.json, tokenizer_config.json,
// chat_template.jinja / .json, config.json, added_tokens.json may be missing), with the added
// tokens when n_vocab >= 0 (ids at or past n_vocab skipped, as the converter warns and skips).
// Throws sr::Error naming the file on malformed JSON, a negative token id (the converter refuses
// those too) or an added token without an integer id or a text.
GgufSpecialVocab read_hf_special_vocab(const std::string& dir, int64_t n_vocab);

// tokenizer.ggml.<...>_token_id of a type ("pad" -> tokenizer.ggml.padding_token_id).
std::string gguf_special_token_key(const std::string& type);

// The same entries as stored in a GGUF file (types in the fixed order above).
GgufSpecialVocab read_gguf_special_vocab(const GgufReader& r);

// The tokenizer stored in `r`, or nullptr with `why_not` set when the file has no
// tokenizer.ggml.* metadata, a tokenizer model other than "llama" or "gpt2", or a "gpt2"
// pre-tokenizer we do not implement (so that a model can still be opened, and the error
// shows only if a tokenizer is needed). Throws sr::Error naming the file and key on
// malformed metadata (wrong types, array lengths that differ from the token count,
// unknown token types, ids out of range, "gpt2" without merges or with a merge whose
// parts are not tokens).
std::unique_ptr<Tokenizer> read_gguf_tokenizer(const GgufReader& r, std::string& why_not);

// The metadata entries, in llama.cpp's convert order, that describe `v`. SentencePiece: a
// "llama" tokenizer: model, pre ("default"), tokens, scores, token_type, then with a known
// `special` exactly what _set_vocab_sentencepiece writes: SpecialVocab's ids, add flags and chat
// template, and special.add_space_prefix when set (nothing else: llama.cpp's defaults, bos 1,
// eos 2, unk 0, add_bos true, add_space_prefix true, stand for what the folder does not say);
// without one (a llama2.c source) the vocabulary's bos/eos/unknown ids, add_bos_token,
// add_eos_token (false) and add_space_prefix. ByteLevelBpe: a "gpt2" tokenizer: model, pre,
// tokens, token_type, merges, then with a known `special` its ids, add flags and chat template as
// SpecialVocab writes them, else the vocabulary's bos/eos ids when >= 0 and add_bos_token;
// add_space_prefix when set. special.added_tokens are applied by the caller (they change
// tokens, scores and types: export/gguf_metadata.cpp).
std::vector<std::pair<std::string, GgufValue>> gguf_vocabulary_metadata(const Vocabulary& v,
                                                                         const GgufSpecialVocab& special = {});

}  // namespace sr
