#include "export/gguf_metadata.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/json_parse.h"
#include "common/strings.h"
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

// llama.cpp needs one token per embedding row: like convert_hf_to_gguf.py, fill the
// rows past the tokenizer with unused "[PAD<i>]" tokens.
Vocabulary padded_vocabulary(Vocabulary v, int64_t rows) {
  for (int64_t i = 1; int64_t(v.pieces.size()) < rows; ++i) {
    v.pieces.push_back("[PAD" + std::to_string(i) + "]");
    v.scores.push_back(-1000.0f);
    v.kinds.push_back(PieceKind::Unused);
  }
  return v;
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
  e.emplace_back("general.name", GgufValue::string(model_name));
  add_hyper_parameters(c, k, source.head_dim_named, e);
  e.emplace_back("general.file_type", u32(gguf_mix_info(mix).file_type));
  add_architecture_keys(c, k, e);
  for (auto& kv : gguf_vocabulary_metadata(padded_vocabulary(vocab, c.vocab), source.special)) e.push_back(std::move(kv));
  e.emplace_back("general.quantization_version", u32(kGgmlQuantizationVersion));
  return e;
}

GgufSource gguf_source_of(const std::string& model_path, const Vocabulary& vocab) {
  GgufSource s;
  const fs::path p(model_path);
  if (fs::is_directory(p)) {
    const fs::path config = p / "config.json";
    if (fs::is_regular_file(config)) {
      const nlohmann::json j = read_json_file(config.string());
      s.head_dim_named = j.is_object() && j.contains("head_dim") && !j["head_dim"].is_null();
    }
    const bool spm = vocab.model == TokenizerModel::SentencePiece;
    s.special = read_hf_special_vocab(p.string(), spm ? int64_t(vocab.pieces.size()) : -1);
  } else if (ascii_lower(p.extension().string()) == ".gguf") {
    const GgufReader r(model_path);
    const std::string arch = r.get_or<std::string>("general.architecture", "");
    s.head_dim_named = r.has(arch + ".attention.key_length");
    s.special = read_gguf_special_vocab(r);
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
