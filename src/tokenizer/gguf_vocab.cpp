// tokenizer.ggml.* <-> Vocabulary (contract in gguf_vocab.h).
#include "tokenizer/gguf_vocab.h"

#include "common/error.h"

namespace sr {
namespace {

constexpr const char* kModelKey = "tokenizer.ggml.model";
constexpr const char* kTokensKey = "tokenizer.ggml.tokens";
constexpr const char* kScoresKey = "tokenizer.ggml.scores";
constexpr const char* kTypesKey = "tokenizer.ggml.token_type";

PieceKind piece_kind(int32_t token_type, size_t id, const GgufReader& r) {
  if (token_type == 0) return PieceKind::Normal;  // LLAMA_TOKEN_TYPE_UNDEFINED
  SR_CHECK(token_type >= int32_t(PieceKind::Normal) && token_type <= int32_t(PieceKind::Byte), "[tokenizer] ",
           r.path(), ": ", kTypesKey, "[", id, "] is ", token_type, ", expected 0..6");
  return PieceKind(token_type);
}

// A per-token array must have exactly one entry per token.
template <typename T>
std::vector<T> per_token_array(const GgufReader& r, const char* key, size_t n_tokens, T fallback) {
  if (!r.has(key)) return std::vector<T>(n_tokens, fallback);
  std::vector<T> v = r.get_array<T>(key);
  SR_CHECK(v.size() == n_tokens, "[tokenizer] ", r.path(), ": ", key, " has ", v.size(), " entries but ",
           kTokensKey, " has ", n_tokens);
  return v;
}

int32_t token_id(const GgufReader& r, const std::string& key, uint32_t fallback) {
  const uint32_t id = r.get_or<uint32_t>(key, fallback);
  SR_CHECK(id <= uint32_t(INT32_MAX), "[tokenizer] ", r.path(), ": ", key, " = ", id, " is out of range");
  return int32_t(id);
}

Vocabulary read_llama_vocabulary(const GgufReader& r) {
  Vocabulary v;
  v.source = r.path() + " (tokenizer.ggml.*)";
  v.pieces = r.get_array<std::string>(kTokensKey);
  SR_CHECK(!v.pieces.empty(), "[tokenizer] ", r.path(), ": ", kTokensKey, " is empty");
  const size_t n = v.pieces.size();
  v.scores = per_token_array<float>(r, kScoresKey, n, 0.0f);
  const std::vector<int32_t> types = per_token_array<int32_t>(r, kTypesKey, n, int32_t(PieceKind::Normal));
  for (size_t i = 0; i < n; ++i) v.kinds.push_back(piece_kind(types[i], i, r));
  v.bos_id = token_id(r, "tokenizer.ggml.bos_token_id", 1);
  v.eos_id = token_id(r, "tokenizer.ggml.eos_token_id", 2);
  v.unk_id = token_id(r, "tokenizer.ggml.unknown_token_id", 0);
  v.add_bos = r.get_or<bool>("tokenizer.ggml.add_bos_token", true);
  v.add_dummy_prefix = r.get_or<bool>("tokenizer.ggml.add_space_prefix", true);
  v.remove_extra_whitespaces = false;  // llama.cpp's SPM tokenizer keeps every space
  return v;
}

}  // namespace

std::unique_ptr<Tokenizer> read_gguf_tokenizer(const GgufReader& r, std::string& why_not) {
  if (!r.has(kModelKey)) {
    why_not = r.path() + " has no tokenizer.ggml.* metadata; pass a tokenizer with --tokenizer";
    return nullptr;
  }
  const std::string model = r.get<std::string>(kModelKey);
  if (model != "llama") {
    why_not = r.path() + ": tokenizer model '" + model + "' is not supported yet (only 'llama', SentencePiece BPE" +
              (model == "gpt2" ? "; 'gpt2' is byte-level BPE" : "") +
              "); pass a SentencePiece tokenizer.model or llama2.c tokenizer.bin with --tokenizer";
    return nullptr;
  }
  return std::make_unique<Tokenizer>(read_llama_vocabulary(r));
}

std::vector<std::pair<std::string, GgufValue>> gguf_vocabulary_metadata(const Vocabulary& v) {
  std::vector<int32_t> types;
  for (PieceKind k : v.kinds) types.push_back(int32_t(k));
  return {
      {kModelKey, GgufValue::string("llama")},
      {"tokenizer.ggml.pre", GgufValue::string("default")},
      {kTokensKey, GgufValue::array(v.pieces)},
      {kScoresKey, GgufValue::array(v.scores)},
      {kTypesKey, GgufValue::array(types)},
      {"tokenizer.ggml.bos_token_id", GgufValue::scalar<uint32_t>(uint32_t(v.bos_id))},
      {"tokenizer.ggml.eos_token_id", GgufValue::scalar<uint32_t>(uint32_t(v.eos_id))},
      {"tokenizer.ggml.unknown_token_id", GgufValue::scalar<uint32_t>(uint32_t(v.unk_id))},
      {"tokenizer.ggml.add_bos_token", GgufValue::scalar<bool>(v.add_bos)},
      {"tokenizer.ggml.add_eos_token", GgufValue::scalar<bool>(false)},
      {"tokenizer.ggml.add_space_prefix", GgufValue::scalar<bool>(v.add_dummy_prefix)},
  };
}

}  // namespace sr
