// tokenizer.ggml.* <-> Vocabulary (contract in gguf_vocab.h).
#include "tokenizer/gguf_vocab.h"

#include <algorithm>
#include <optional>

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

// What both tokenizer models store alike: the source, the tokens and their types.
Vocabulary read_tokens(const GgufReader& r) {
  Vocabulary v;
  v.source = r.path() + " (tokenizer.ggml.*)";
  v.pieces = r.get_array<std::string>(kTokensKey);
  SR_CHECK(!v.pieces.empty(), "[tokenizer] ", r.path(), ": ", kTokensKey, " is empty");
  const size_t n = v.pieces.size();
  const std::vector<int32_t> types = per_token_array<int32_t>(r, kTypesKey, n, int32_t(PieceKind::Normal));
  for (size_t i = 0; i < n; ++i) v.kinds.push_back(piece_kind(types[i], i, r));
  return v;
}

std::vector<int32_t> token_types(const Vocabulary& v) {
  std::vector<int32_t> types;
  for (PieceKind k : v.kinds) types.push_back(int32_t(k));
  return types;
}

// remove_extra_whitespaces keeps its default, false: llama.cpp's SPM tokenizer keeps every space.
Vocabulary read_llama_vocabulary(const GgufReader& r) {
  Vocabulary v = read_tokens(r);
  v.scores = per_token_array<float>(r, kScoresKey, v.pieces.size(), 0.0f);
  v.bos_id = token_id(r, "tokenizer.ggml.bos_token_id", 1);
  v.eos_id = token_id(r, "tokenizer.ggml.eos_token_id", 2);
  v.unk_id = token_id(r, "tokenizer.ggml.unknown_token_id", 0);
  v.add_bos = r.get_or<bool>("tokenizer.ggml.add_bos_token", true);
  v.add_dummy_prefix = r.get_or<bool>("tokenizer.ggml.add_space_prefix", true);
  return v;
}

constexpr const char* kMergesKey = "tokenizer.ggml.merges";

// llama.cpp's names of the pre-tokenizers we implement (llama-vocab.cpp's tokenizer_pre
// values; convert_hf_to_gguf.py writes "llama-bpe", "qwen2" and "gpt-2").
std::optional<PreTokenizer> pre_from_gguf(const std::string& pre) {
  if (pre == "llama-bpe" || pre == "llama3") return PreTokenizer::Llama3;
  if (pre == "qwen2") return PreTokenizer::Qwen2;
  if (pre == "gpt-2" || pre == "default") return PreTokenizer::Gpt2;
  return std::nullopt;
}

const char* pre_to_gguf(PreTokenizer p) {
  switch (p) {
    case PreTokenizer::Llama3: return "llama-bpe";
    case PreTokenizer::Qwen2: return "qwen2";
    case PreTokenizer::Gpt2: break;
  }
  return "gpt-2";
}

int32_t optional_token_id(const GgufReader& r, const std::string& key) {
  return r.has(key) ? token_id(r, key, 0) : -1;
}

Vocabulary read_gpt2_vocabulary(const GgufReader& r, PreTokenizer pre) {
  Vocabulary v = read_tokens(r);
  v.model = TokenizerModel::ByteLevelBpe;
  v.pre = pre;
  v.ignore_merges = pre == PreTokenizer::Llama3;  // llama.cpp ties it to the pre type
  v.scores.assign(v.pieces.size(), 0.0f);
  SR_CHECK(r.has(kMergesKey), "[tokenizer] ", r.path(), ": tokenizer model 'gpt2' without ", kMergesKey);
  const std::vector<std::string> merges = r.get_array<std::string>(kMergesKey);
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string& m = merges[i];
    const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;  // as llama.cpp splits
    SR_CHECK(sp != std::string::npos && sp + 1 < m.size(), "[tokenizer] ", r.path(), ": ", kMergesKey, "[", i,
             "] \"", m, "\" is not two tokens separated by a space");
    v.merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
  }
  v.unk_id = optional_token_id(r, "tokenizer.ggml.unknown_token_id");
  v.bos_id = optional_token_id(r, "tokenizer.ggml.bos_token_id");
  v.eos_id = optional_token_id(r, "tokenizer.ggml.eos_token_id");
  v.add_bos = r.get_or<bool>("tokenizer.ggml.add_bos_token", pre == PreTokenizer::Llama3);
  v.add_dummy_prefix = r.get_or<bool>("tokenizer.ggml.add_space_prefix", false);
  return v;
}

using Entries = std::vector<std::pair<std::string, GgufValue>>;

GgufValue id_value(int64_t id) { return GgufValue::scalar<uint32_t>(uint32_t(id)); }

// SpecialVocab.add_to_gguf's part after the merges: ids, add flags, chat template. `skip`: types
// whose id and add flag the caller wrote itself.
void add_special(const GgufSpecialVocab& s, const std::vector<std::string>& skip, Entries& e) {
  auto skipped = [&](const std::string& t) { return std::find(skip.begin(), skip.end(), t) != skip.end(); };
  for (const auto& [type, id] : s.ids)
    if (!skipped(type)) e.emplace_back(gguf_special_token_key(type), id_value(id));
  for (const auto& [type, value] : s.add)
    if (!skipped(type)) e.emplace_back("tokenizer.ggml.add_" + type + "_token", GgufValue::scalar<bool>(value));
  if (s.chat_template) e.emplace_back("tokenizer.chat_template", GgufValue::string(*s.chat_template));
}

Entries gpt2_metadata(const Vocabulary& v, const GgufSpecialVocab& special) {
  std::vector<std::string> merges;
  merges.reserve(v.merges.size());
  for (const auto& [a, b] : v.merges) merges.push_back(a + " " + b);
  Entries e = {
      {kModelKey, GgufValue::string("gpt2")},
      {"tokenizer.ggml.pre", GgufValue::string(pre_to_gguf(v.pre))},
      {kTokensKey, GgufValue::array(v.pieces)},
      {kTypesKey, GgufValue::array(token_types(v))},
      {kMergesKey, GgufValue::array(merges)},
  };
  if (special.known) {
    add_special(special, {}, e);
  } else {
    if (v.bos_id >= 0) e.emplace_back("tokenizer.ggml.bos_token_id", id_value(v.bos_id));
    if (v.eos_id >= 0) e.emplace_back("tokenizer.ggml.eos_token_id", id_value(v.eos_id));
    e.emplace_back("tokenizer.ggml.add_bos_token", GgufValue::scalar<bool>(v.add_bos && v.bos_id >= 0));
  }
  // LlamaModel's flag from tokenizer_config.json; else (llama.cpp's BPE tokenizer ignores it)
  // written only when set, so that we read it back.
  if (special.add_space_prefix)
    e.emplace_back("tokenizer.ggml.add_space_prefix", GgufValue::scalar<bool>(*special.add_space_prefix));
  else if (v.add_dummy_prefix)
    e.emplace_back("tokenizer.ggml.add_space_prefix", GgufValue::scalar<bool>(true));
  return e;
}

}  // namespace

std::unique_ptr<Tokenizer> read_gguf_tokenizer(const GgufReader& r, std::string& why_not) {
  if (!r.has(kModelKey)) {
    why_not = r.path() + " has no tokenizer.ggml.* metadata";
    return nullptr;
  }
  const std::string model = r.get<std::string>(kModelKey);
  if (model == "gpt2") {
    const std::string pre = r.get_or<std::string>("tokenizer.ggml.pre", "default");
    const std::optional<PreTokenizer> kind = pre_from_gguf(pre);
    if (!kind) {
      why_not = r.path() + ": byte-level BPE pre-tokenizer '" + pre +
                "' (tokenizer.ggml.pre) is not supported (only 'gpt-2'/'default', 'llama-bpe'/'llama3' and "
                "'qwen2')";
      return nullptr;
    }
    return std::make_unique<Tokenizer>(read_gpt2_vocabulary(r, *kind));
  }
  if (model != "llama") {
    why_not = r.path() + ": tokenizer model '" + model + "' is not supported (only 'llama', SentencePiece BPE, "
              "and 'gpt2', byte-level BPE); a SentencePiece tokenizer.model or llama2.c tokenizer.bin file works";
    return nullptr;
  }
  return std::make_unique<Tokenizer>(read_llama_vocabulary(r));
}

std::vector<std::pair<std::string, GgufValue>> gguf_vocabulary_metadata(const Vocabulary& v,
                                                                         const GgufSpecialVocab& special) {
  if (v.model == TokenizerModel::ByteLevelBpe) return gpt2_metadata(v, special);
  Entries e = {
      {kModelKey, GgufValue::string("llama")},
      {"tokenizer.ggml.pre", GgufValue::string("default")},
      {kTokensKey, GgufValue::array(v.pieces)},
      {kScoresKey, GgufValue::array(v.scores)},
      {kTypesKey, GgufValue::array(token_types(v))},
  };
  if (special.known) {  // _set_vocab_sentencepiece: SpecialVocab.add_to_gguf, then LlamaModel's prefix flag
    add_special(special, {}, e);
    if (special.add_space_prefix)
      e.emplace_back("tokenizer.ggml.add_space_prefix", GgufValue::scalar<bool>(*special.add_space_prefix));
    return e;
  }
  e.emplace_back("tokenizer.ggml.bos_token_id", id_value(v.bos_id));
  e.emplace_back("tokenizer.ggml.eos_token_id", id_value(v.eos_id));
  e.emplace_back("tokenizer.ggml.unknown_token_id", id_value(v.unk_id));
  e.emplace_back("tokenizer.ggml.add_bos_token", GgufValue::scalar<bool>(v.add_bos));
  e.emplace_back("tokenizer.ggml.add_eos_token", GgufValue::scalar<bool>(false));
  e.emplace_back("tokenizer.ggml.add_space_prefix", GgufValue::scalar<bool>(v.add_dummy_prefix));
  return e;
}

}  // namespace sr
