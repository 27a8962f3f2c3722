#include "export/gguf_metadata.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/error.h"
#include "common/json_parse.h"
#include "common/strings.h"
#include "export/gguf_naming.h"
#include "io/gguf_reader.h"
#include "model/gguf_arch.h"
#include "tokenizer/gguf_vocab.h"

namespace sr {
namespace {

namespace fs = std::filesystem;
using Entries = std::vector<std::pair<std::string, GgufValue>>;

GgufValue u32(int64_t v) { return GgufValue::scalar<uint32_t>(uint32_t(v)); }
GgufValue f32(double v) { return GgufValue::scalar<float>(float(v)); }

// Keys of the architecture's prefix ("qwen2.block_count").
struct Keys {
  const GgufArch& arch;
  std::string operator()(const char* rest) const { return std::string(arch.name) + "." + rest; }
};

// convert_hf_to_gguf.py's base set_gguf_parameters, in its order (expert_used_count among them,
// where the HF config names num_experts_per_tok: every MoE family).
void add_hyper_parameters(const ModelConfig& c, const Keys& k, bool head_dim_named, Entries& e) {
  e.emplace_back(k("block_count"), u32(c.n_layers));
  e.emplace_back(k("context_length"), u32(c.max_position));
  e.emplace_back(k("embedding_length"), u32(c.hidden));
  e.emplace_back(k("feed_forward_length"), u32(c.intermediate));
  e.emplace_back(k("attention.head_count"), u32(c.n_heads));
  e.emplace_back(k("attention.head_count_kv"), u32(c.n_kv_heads));
  e.emplace_back(k("rope.freq_base"), f32(c.rope_theta));
  e.emplace_back(k("attention.layer_norm_rms_epsilon"), f32(c.rms_eps));
  if (k.arch.expert_keys == GgufExpertKeys::Llama) e.emplace_back(k("expert_count"), u32(c.moe.n_experts));
  if (k.arch.expert_keys != GgufExpertKeys::None) e.emplace_back(k("expert_used_count"), u32(c.moe.n_used));
  if (!head_dim_named) return;
  e.emplace_back(k("attention.key_length"), u32(c.head_dim));
  e.emplace_back(k("attention.value_length"), u32(c.head_dim));
}

// What the architecture's own set_gguf_parameters adds after general.file_type: LlamaModel's
// vocabulary size and RoPE keys, Qwen2MoeModel's expert keys.
void add_architecture_keys(const ModelConfig& c, const Keys& k, Entries& e) {
  if (k.arch.expert_keys == GgufExpertKeys::Qwen) {
    e.emplace_back(k("expert_count"), u32(c.moe.n_experts));
    e.emplace_back(k("expert_feed_forward_length"), u32(c.moe.expert_intermediate));
    if (c.moe.shared_intermediate > 0)
      e.emplace_back(k("expert_shared_feed_forward_length"), u32(c.moe.shared_intermediate));
  }
  if (k.arch.llama_keys) {
    e.emplace_back(k("vocab_size"), u32(c.vocab));
    e.emplace_back(k("rope.dimension_count"), u32(c.head_dim));
    if (c.rope_scaling.type == "linear") {
      e.emplace_back(k("rope.scaling.type"), GgufValue::string("linear"));
      e.emplace_back(k("rope.scaling.factor"), f32(c.rope_scaling.factor));
    }
  }
  if (c.rope_scaling.type == "yarn") {  // Qwen2Model's (and the converter's generic) YaRN keys
    e.emplace_back(k("rope.scaling.type"), GgufValue::string("yarn"));
    e.emplace_back(k("rope.scaling.factor"), f32(c.rope_scaling.factor));
    e.emplace_back(k("rope.scaling.original_context_length"), u32(c.rope_scaling.original_max_position));
  }
}

// llama.cpp needs one token per embedding row: like convert_hf_to_gguf.py, fill the rows past
// the tokenizer with unused "[PAD<id>]" tokens (its SentencePiece score -10000), then re-type the
// folder's added tokens (_create_vocab_sentencepiece).
Vocabulary padded_vocabulary(Vocabulary v, int64_t rows, const std::vector<GgufAddedToken>& added) {
  while (int64_t(v.pieces.size()) < rows) {
    v.pieces.push_back("[PAD" + std::to_string(v.pieces.size()) + "]");
    v.scores.push_back(-10000.0f);
    v.kinds.push_back(PieceKind::Unused);
  }
  for (const GgufAddedToken& t : added) {
    if (t.id >= rows) continue;
    v.pieces[size_t(t.id)] = t.text;
    v.scores[size_t(t.id)] = -1000.0f;
    v.kinds[size_t(t.id)] = t.kind;
  }
  return v;
}

// GGUFWriter.get_total_parameter_count over the file's tensors: the total, the parameters outside
// the stacked expert tensors ("_exps."), one expert's share of those, and the mean expert count.
struct ParamCount {
  int64_t total = 0, shared = 0, expert = 0, experts = 0;
};

ParamCount count_parameters(const ModelConfig& c) {
  ParamCount p;
  int64_t expert_sum = 0, expert_tensors = 0;
  for (const GgufTensorPlan& t : gguf_tensor_list(c)) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    if (t.name.find("_exps.") != std::string::npos && t.shape.size() >= 3) {
      const int64_t e = t.shape[t.shape.size() - (t.name.find(".bias") != std::string::npos ? 2 : 3)];
      p.expert += n / e;
      expert_sum += e;
      ++expert_tensors;
    } else {
      p.shared += n;
    }
    p.total += n;
  }
  p.experts = expert_tensors > 0 ? expert_sum / expert_tensors : 0;
  return p;
}

GgufValue str(const std::string& s) { return GgufValue::string(s); }

// gguf-py Metadata.load + set_gguf_meta_model for a Hugging Face folder (no model card): the
// sampling entries, then name, version, organization, finetune, basename, size_label. Empty
// strings are not written (GGUFWriter.add_string skips them).
void add_general_from_folder(const GgufSource& src, const ParamCount& p, Entries& e) {
  std::optional<std::string> name, organization, basename, finetune, version, size_label;
  for (const std::string& id : src.model_ids) {
    const GgufModelIdParts parts = gguf_model_id_parts(id, p.total);
    if (!name) name = gguf_id_to_title(parts.full_name);
    if (!organization && parts.organization) organization = gguf_id_to_title(*parts.organization);
    if (!basename) basename = parts.basename;
    if (!finetune) finetune = parts.finetune;
    if (!version) version = parts.version;
    if (!size_label) size_label = parts.size_label;
  }
  if (!size_label && p.total > 0) size_label = gguf_size_label(p.total, p.shared, p.expert, p.experts);
  for (const auto& kv : src.sampling) e.push_back(kv);
  auto add = [&](const char* key, const std::optional<std::string>& v) {
    if (v && !v->empty()) e.emplace_back(key, str(*v));
  };
  add("general.name", name);
  add("general.version", version);
  add("general.organization", organization);
  add("general.finetune", finetune);
  add("general.basename", basename);
  add("general.size_label", size_label);
}

// generation_config.json's entries as gguf-py's Metadata.load reads them (key, GGUF key, type).
void read_sampling(const fs::path& file, std::vector<std::pair<std::string, GgufValue>>& out) {
  if (!fs::is_regular_file(file)) return;
  nlohmann::json j;
  try {
    j = read_json_file(file.string());
  } catch (const Error&) {
    return;  // not every model has a valid generation_config.json: the converter ignores it too
  }
  if (!j.is_object()) return;
  enum Kind { Str, I32, F32 };
  const struct { const char* json; const char* key; Kind kind; } rows[] = {
      {"sequence", "sequence", Str},         {"top_k", "top_k", I32},
      {"top_p", "top_p", F32},               {"min_p", "min_p", F32},
      {"xtc_probability", "xtc_probability", F32}, {"xtc_threshold", "xtc_threshold", F32},
      {"temperature", "temp", F32},          {"penalty_last_n", "penalty_last_n", I32},
      {"penalty_repeat", "penalty_repeat", F32}, {"mirostat", "mirostat", I32},
      {"mirostat_tau", "mirostat_tau", F32}, {"mirostat_eta", "mirostat_eta", F32},
  };
  for (const auto& r : rows) {
    auto it = j.find(r.json);
    if (it == j.end() || it->is_null()) continue;
    const std::string key = std::string("general.sampling.") + r.key;
    const bool ok = r.kind == Str ? it->is_string()
                    : r.kind == I32 ? it->is_number_integer() && it->get<int64_t>() >= INT32_MIN &&
                                          it->get<int64_t>() <= INT32_MAX
                                    : it->is_number();
    SR_CHECK(ok, "[gguf] ", file.string(), ": ", r.json, " = ", it->dump(), " is not ",
             r.kind == Str ? "a string" : r.kind == I32 ? "a 32-bit integer" : "a number");
    if (r.kind == Str) {
      if (!it->get<std::string>().empty()) out.emplace_back(key, str(it->get<std::string>()));
    } else if (r.kind == I32) {
      out.emplace_back(key, GgufValue::scalar<int32_t>(int32_t(it->get<int64_t>())));
    } else {
      out.emplace_back(key, f32(it->get<double>()));
    }
  }
}

// A GGUF source's descriptive general.* keys: all but what describes this file itself.
std::vector<std::pair<std::string, GgufValue>> gguf_general_of(const GgufReader& r) {
  std::vector<std::pair<std::string, GgufValue>> out;
  for (const auto& [key, value] : r.metadata()) {
    if (key.rfind("general.", 0) != 0) continue;
    if (key == "general.architecture" || key == "general.type" || key == "general.file_type" ||
        key == "general.quantization_version" || key == "general.alignment" || key == "general.quantized_by")
      continue;
    out.emplace_back(key, value);
  }
  return out;
}

}  // namespace

std::vector<std::pair<std::string, GgufValue>> gguf_model_metadata(const ModelConfig& c, const Vocabulary& vocab,
                                                                   GgufMix mix, const std::string& model_name,
                                                                   const GgufSource& source) {
  SR_CHECK(int64_t(vocab.pieces.size()) <= c.vocab, "[gguf] the tokenizer (", vocab.source, ") has ",
           vocab.pieces.size(), " tokens but the model's vocabulary is only ", c.vocab);
  const Keys k{gguf_arch_of(c.arch)};
  Entries e;
  e.emplace_back("general.architecture", GgufValue::string(k.arch.name));
  e.emplace_back("general.type", GgufValue::string("model"));
  const bool named = std::any_of(source.general.begin(), source.general.end(),
                                 [](const auto& kv) { return kv.first == "general.name"; });
  if (source.hf_folder) add_general_from_folder(source, count_parameters(c), e);
  else if (!named) e.emplace_back("general.name", GgufValue::string(model_name));
  for (const auto& kv : source.general) e.push_back(kv);
  add_hyper_parameters(c, k, source.head_dim_named, e);
  e.emplace_back("general.file_type", u32(gguf_mix_info(mix).file_type));
  add_architecture_keys(c, k, e);
  e.emplace_back("general.quantization_version", u32(kGgmlQuantizationVersion));
  GgufSpecialVocab special = source.special;
  // add_space_prefix from tokenizer_config.json is LlamaModel's (a GGUF source keeps its own).
  if (source.hf_folder && std::string(k.arch.name) != "llama") special.add_space_prefix.reset();
  const Vocabulary padded = padded_vocabulary(vocab, c.vocab, special.added_tokens);
  for (auto& kv : gguf_vocabulary_metadata(padded, special)) e.push_back(std::move(kv));
  return e;
}

GgufSource gguf_source_of(const std::string& model_path, const Vocabulary& vocab) {
  GgufSource s;
  const fs::path p(model_path);
  if (fs::is_directory(p)) {
    s.hf_folder = true;
    const fs::path config = p / "config.json";
    int64_t n_vocab = int64_t(vocab.pieces.size());
    if (fs::is_regular_file(config)) {
      const nlohmann::json j = read_json_file(config.string());
      s.head_dim_named = j.is_object() && j.contains("head_dim") && !j["head_dim"].is_null();
      if (j.is_object() && j.contains("vocab_size") && j["vocab_size"].is_number_integer())
        n_vocab = std::max<int64_t>(j["vocab_size"].get<int64_t>(), 0);  // the converter's vocabulary size
      // Metadata.apply_metadata_heuristic: _name_or_path only when it is a model id, not a path.
      const auto it = j.is_object() ? j.find("_name_or_path") : j.end();
      const std::string id = it != j.end() && it->is_string() ? it->get<std::string>() : "";
      if (it != j.end() && it->is_string() && std::count(id.begin(), id.end(), '/') <= 1) s.model_ids.push_back(id);
    }
    fs::path dir = p.lexically_normal();
    if (dir.filename().empty()) dir = dir.parent_path();
    s.model_ids.push_back(fs::absolute(dir).lexically_normal().filename().string());
    read_sampling(p / "generation_config.json", s.sampling);
    const bool spm = vocab.model == TokenizerModel::SentencePiece;
    s.special = read_hf_special_vocab(p.string(), spm ? n_vocab : -1);
  } else if (ascii_lower(p.extension().string()) == ".gguf") {
    const GgufReader r(model_path);
    const std::string arch = r.get_or<std::string>("general.architecture", "");
    s.head_dim_named = r.has(arch + ".attention.key_length");
    s.special = read_gguf_special_vocab(r);
    s.general = gguf_general_of(r);
  }
  return s;
}

std::vector<float> gguf_rope_freq_factors(const ModelConfig& c) {
  const RopeScaling& s = c.rope_scaling;
  if (!s.freq_factors.empty()) return s.freq_factors;
  if (s.type != "llama3") return {};
  // convert_hf_to_gguf.py LlamaModel.generate_extra_tensors, float32 as in its torch code.
  const float factor = float(s.factor), lo = float(s.low_freq_factor), hi = float(s.high_freq_factor);
  const float old_ctx = float(s.original_max_position);
  const float low_wavelen = old_ctx / lo, high_wavelen = old_ctx / hi;
  std::vector<float> out;
  for (int64_t i = 0; i < c.head_dim; i += 2) {
    const float freq = 1.0f / std::pow(float(c.rope_theta), float(i) / float(c.head_dim));
    const float wavelen = float(2 * M_PI) / freq;
    if (wavelen < high_wavelen) out.push_back(1.0f);
    else if (wavelen > low_wavelen) out.push_back(factor);
    else {
      const float smooth = (old_ctx / wavelen - lo) / (hi - lo);
      out.push_back(1.0f / ((1 - smooth) / factor + smooth));
    }
  }
  return out;
}

}  // namespace sr
