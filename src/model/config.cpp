#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "io/llama2c.h"
#include "common/json_parse.h"
#include "common/limits.h"

namespace sr {
using nlohmann::json;

namespace {

// How a block's feed-forward is laid out: one MLP, or experts named as Mixtral or Qwen name them.
enum class Ffn : uint8_t { Dense, MixtralMoe, QwenMoe };
struct ArchRow { const char* hf_name; Arch arch; bool qkv_bias; bool qk_norm; Ffn ffn; bool shared_expert; };
// Architectures we run, and what each adds to the plain Llama block.
constexpr ArchRow kArchs[] = {
    {"LlamaForCausalLM", Arch::Llama, false, false, Ffn::Dense, false},
    {"MistralForCausalLM", Arch::Mistral, false, false, Ffn::Dense, false},
    {"Qwen2ForCausalLM", Arch::Qwen2, true, false, Ffn::Dense, false},
    {"Qwen3ForCausalLM", Arch::Qwen3, false, true, Ffn::Dense, false},
    {"MixtralForCausalLM", Arch::Mixtral, false, false, Ffn::MixtralMoe, false},
    {"Qwen2MoeForCausalLM", Arch::Qwen2Moe, true, false, Ffn::QwenMoe, true},
    {"Qwen3MoeForCausalLM", Arch::Qwen3Moe, false, true, Ffn::QwenMoe, false},
};

template <typename T>
T field(const json& j, const char* key, const std::string& path) {
  SR_CHECK(j.contains(key) && !j[key].is_null(), "[config] ", path, ": missing field '", key, "'");
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    T v{};
    SR_CHECK(json_integer(j[key], v), "[config] ", path, ": field '", key, "' must be an integer, got ", j[key].dump());
    return v;
  }
  try {
    return j[key].get<T>();
  } catch (const json::exception&) {
    fail("[config] ", path, ": field '", key, "' has the wrong type (", j[key].dump(), ")");
  }
}

template <typename T>
T field_or(const json& j, const char* key, T fallback, const std::string& path) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  return field<T>(j, key, path);
}

// YaRN as Qwen's configs give it and llama.cpp runs it: beta_fast 32, beta_slow 1, the attention
// factor 1 + 0.1 ln(factor), correction dims rounded outwards. Other settings (DeepSeek's mscale,
// an explicit attention_factor, truncate false) would compute another model: refused by name.
void check_yarn_defaults(const json& s, const std::string& path) {
  for (const auto& [key, value] : {std::pair("beta_fast", 32.0), std::pair("beta_slow", 1.0)})
    if (s.contains(key) && !s[key].is_null())
      SR_CHECK(field<double>(s, key, path) == value, "[config] ", path, ": rope_scaling.", key, " ", s[key].dump(),
               " is not supported for yarn (only ", value, ", as llama.cpp runs it)");
  for (const char* key : {"attention_factor", "mscale", "mscale_all_dim"})
    SR_CHECK(!s.contains(key) || s[key].is_null(), "[config] ", path, ": rope_scaling.", key,
             " is not supported for yarn (llama.cpp's attention factor is 1 + 0.1 ln(factor))");
  SR_CHECK(!s.contains("truncate") || s["truncate"] != false, "[config] ", path,
           ": rope_scaling.truncate false is not supported for yarn (llama.cpp rounds the correction range)");
}

RopeScaling parse_rope_scaling(const json& j, const std::string& path) {
  RopeScaling r;
  if (!j.contains("rope_scaling") || j["rope_scaling"].is_null()) return r;
  const json& s = j["rope_scaling"];
  SR_CHECK(s.is_object(), "[config] ", path, ": rope_scaling must be an object or null");
  r.type = s.contains("rope_type") ? field<std::string>(s, "rope_type", path)
                                   : field_or<std::string>(s, "type", "none", path);
  if (r.type == "default") r.type = "none";
  r.factor = field_or<double>(s, "factor", 1.0, path);
  if (r.type == "llama3") {
    r.low_freq_factor = field<double>(s, "low_freq_factor", path);
    r.high_freq_factor = field<double>(s, "high_freq_factor", path);
    r.original_max_position = field<int64_t>(s, "original_max_position_embeddings", path);
  }
  if (r.type == "yarn") {
    r.original_max_position = field<int64_t>(s, "original_max_position_embeddings", path);
    check_yarn_defaults(s, path);
  }
  SR_CHECK(r.type == "none" || r.type == "llama3" || r.type == "linear" || r.type == "yarn", "[config] ", path,
           ": rope_scaling type '", r.type, "' is not supported (none, linear, llama3, yarn)");
  SR_CHECK(r.factor > 0 && std::isfinite(r.factor), "[config] ", path, ": rope_scaling.factor must be positive, got ",
           r.factor);
  if (r.type == "yarn")
    SR_CHECK(r.factor >= 1 && r.original_max_position > 0 && r.original_max_position <= limits::kMaxContext,
             "[config] ", path, ": rope_scaling (yarn) needs factor >= 1 and 0 < original_max_position_embeddings <= ",
             limits::kMaxContext, "; got ", r.factor, ", ", r.original_max_position);
  if (r.type == "llama3")
    SR_CHECK(r.low_freq_factor > 0 && r.high_freq_factor > r.low_freq_factor && r.original_max_position > 0 &&
                 r.original_max_position <= limits::kMaxContext,
             "[config] ", path, ": rope_scaling (llama3) needs 0 < low_freq_factor < high_freq_factor and "
             "0 < original_max_position_embeddings <= ", limits::kMaxContext, "; got ", r.low_freq_factor, ", ",
             r.high_freq_factor, ", ", r.original_max_position);
  return r;
}

// The experts of a MoE architecture (row.ffn != Dense). Mixtral names its expert count
// num_local_experts and gives every expert intermediate_size; Qwen names moe_intermediate_size.
MoeConfig parse_moe(const json& j, const ArchRow& row, int64_t intermediate, const std::string& path) {
  MoeConfig m;
  if (row.ffn == Ffn::Dense) return m;
  const bool mixtral = row.ffn == Ffn::MixtralMoe;
  m.n_experts = field<int64_t>(j, mixtral ? "num_local_experts" : "num_experts", path);
  m.n_used = field<int64_t>(j, "num_experts_per_tok", path);
  m.expert_intermediate = mixtral ? intermediate : field<int64_t>(j, "moe_intermediate_size", path);
  if (row.shared_expert) m.shared_intermediate = field<int64_t>(j, "shared_expert_intermediate_size", path);
  m.norm_topk_prob = mixtral || field_or<bool>(j, "norm_topk_prob", false, path);
  return m;
}

// Qwen-MoE's dense blocks (config.h MoeConfig::dense_blocks), from decoder_sparse_step and
// mlp_only_layers; Mixtral has neither. Left empty when every block is sparse.
void parse_dense_blocks(const json& j, ModelConfig& c, const std::string& path) {
  if (!c.is_moe() || c.arch == Arch::Mixtral) return;
  if (c.n_layers <= 0 || c.n_layers > limits::kMaxLayers) return;  // validate_config names the field
  const int64_t step = field_or<int64_t>(j, "decoder_sparse_step", 1, path);
  SR_CHECK(step >= 1, "[config] ", path, ": decoder_sparse_step must be at least 1, got ", step);
  c.moe.sparse_step = step;
  std::vector<bool> dense(size_t(c.n_layers), false);
  for (int64_t i = 0; i < c.n_layers; ++i) dense[size_t(i)] = (i + 1) % step != 0;
  if (j.contains("mlp_only_layers") && !j["mlp_only_layers"].is_null()) {
    const json& m = j["mlp_only_layers"];
    SR_CHECK(m.is_array(), "[config] ", path, ": mlp_only_layers must be a list of layer indices, got ", m.dump());
    for (const json& e : m) {
      SR_CHECK(e.is_number_integer() && e.get<int64_t>() >= 0 && e.get<int64_t>() < c.n_layers, "[config] ", path,
               ": mlp_only_layers entry ", e.dump(), " is not a layer index in [0, ", c.n_layers,
               ") (num_hidden_layers)");
      dense[size_t(e.get<int64_t>())] = true;
    }
  }
  if (std::find(dense.begin(), dense.end(), true) != dense.end()) c.moe.dense_blocks = std::move(dense);
}

// Which layers slide (config.h). Mistral and Mixtral: every layer, whenever sliding_window is
// set. Otherwise only with use_sliding_window: layer_types if given, else the layers from
// max_window_layers on (28 when absent: the default of transformers' Qwen2/Qwen3 configs).
void parse_sliding_window(const json& j, ModelConfig& c, const std::string& path) {
  const bool every_layer = c.arch == Arch::Mistral || c.arch == Arch::Mixtral;
  if (!every_layer && !field_or<bool>(j, "use_sliding_window", false, path)) return;
  c.sliding_window = field_or<int64_t>(j, "sliding_window", 0, path);
  if (every_layer || c.sliding_window <= 0) return;
  if (c.n_layers <= 0 || c.n_layers > limits::kMaxLayers) return;  // validate_config names the field
  c.sliding_layers.assign(size_t(std::max<int64_t>(c.n_layers, 0)), false);
  if (j.contains("layer_types") && !j["layer_types"].is_null()) {
    const json& t = j["layer_types"];
    SR_CHECK(t.is_array() && int64_t(t.size()) == c.n_layers, "[config] ", path, ": layer_types must be an array of ",
             c.n_layers, " entries (num_hidden_layers), got ", t.dump());
    for (size_t i = 0; i < t.size(); ++i) {
      const std::string kind = t[i].is_string() ? t[i].get<std::string>() : t[i].dump();
      SR_CHECK(kind == "sliding_attention" || kind == "full_attention", "[config] ", path, ": layer_types[", i, "] '",
               kind, "' is not supported (sliding_attention, full_attention)");
      c.sliding_layers[i] = kind == "sliding_attention";
    }
    return;
  }
  const int64_t first = field_or<int64_t>(j, "max_window_layers", 28, path);
  for (int64_t i = std::max<int64_t>(first, 0); i < c.n_layers; ++i) c.sliding_layers[size_t(i)] = true;
}

}  // namespace

ModelConfig parse_hf_config(const std::string& text, const std::string& path) {
  const json j = parse_json_text(text, "[config] " + path);
  SR_CHECK(j.is_object(), "[config] ", path, ": not a JSON object");
  ModelConfig c;
  std::string name = "LlamaForCausalLM";
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty())
    name = j["architectures"][0].is_string() ? j["architectures"][0].get<std::string>() : "";
  const ArchRow* row = nullptr;
  for (const ArchRow& r : kArchs) if (name == r.hf_name) row = &r;
  SR_CHECK(row, "[config] ", path, ": architecture '", name,
           "' is not supported (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, "
           "MixtralForCausalLM, Qwen2MoeForCausalLM, Qwen3MoeForCausalLM)");
  c.arch = row->arch;
  c.arch_name = name;
  c.qkv_bias = row->qkv_bias || field_or<bool>(j, "attention_bias", false, path);
  c.qk_norm = row->qk_norm;
  c.hidden = field<int64_t>(j, "hidden_size", path);
  c.intermediate = field<int64_t>(j, "intermediate_size", path);
  c.n_layers = field<int64_t>(j, "num_hidden_layers", path);
  c.n_heads = field<int64_t>(j, "num_attention_heads", path);
  c.n_kv_heads = field_or<int64_t>(j, "num_key_value_heads", c.n_heads, path);
  c.head_dim = field_or<int64_t>(j, "head_dim", c.n_heads > 0 ? c.hidden / c.n_heads : 0, path);
  c.vocab = field<int64_t>(j, "vocab_size", path);
  c.max_position = field_or<int64_t>(j, "max_position_embeddings", 2048, path);
  c.rope_theta = field_or<double>(j, "rope_theta", 10000.0, path);
  c.rope_scaling = parse_rope_scaling(j, path);
  c.rms_eps = field_or<double>(j, "rms_norm_eps", 1e-6, path);
  c.tie_embeddings = field_or<bool>(j, "tie_word_embeddings", false, path);
  c.moe = parse_moe(j, *row, c.intermediate, path);
  parse_dense_blocks(j, c, path);
  parse_sliding_window(j, c, path);
  c.bos_id = j.contains("bos_token_id") && j["bos_token_id"].is_number_integer() ? j["bos_token_id"].get<int32_t>() : 1;
  c.eos_id = j.contains("eos_token_id") && j["eos_token_id"].is_number_integer() ? j["eos_token_id"].get<int32_t>() : 2;
  const std::string act = field_or<std::string>(j, "hidden_act", "silu", path);
  SR_CHECK(act == "silu", "[config] ", path, ": hidden_act '", act, "' is not supported (silu)");
  SR_CHECK(!field_or<bool>(j, "mlp_bias", false, path), "[config] ", path, ": mlp_bias is not supported");
  validate_config(c, path);
  return c;
}

namespace {

// Each size against its limit (common/limits.h), then the products the model builds
// from them (q_dim = heads x head_dim, the projections), overflow-safe.
void check_upper_limits(const ModelConfig& c, const std::string& src) {
  struct Row { const char* field; int64_t value, limit; };
  const Row rows[] = {
      {"num_hidden_layers", c.n_layers, limits::kMaxLayers},     {"hidden_size", c.hidden, limits::kMaxHidden},
      {"intermediate_size", c.intermediate, limits::kMaxIntermediate},
      {"num_attention_heads", c.n_heads, limits::kMaxHeads},     {"num_key_value_heads", c.n_kv_heads, limits::kMaxHeads},
      {"head_dim", c.head_dim, limits::kMaxHeadDim},             {"vocab_size", c.vocab, limits::kMaxVocab},
      {"max_position_embeddings", c.max_position, limits::kMaxContext},
      {"num_experts", c.moe.n_experts, limits::kMaxExperts},
      {"moe_intermediate_size", c.moe.expert_intermediate, limits::kMaxIntermediate},
      {"shared_expert_intermediate_size", c.moe.shared_intermediate, limits::kMaxIntermediate},
  };
  for (const Row& r : rows)
    SR_CHECK(r.value <= r.limit, "[config] ", src, ": ", r.field, " ", r.value, " is over the limit of ", r.limit,
             " (corrupt file?)");
}

void check_products(const ModelConfig& c, const std::string& src) {
  SR_CHECK(c.max_position >= 0, "[config] ", src, ": max_position_embeddings ", c.max_position, " is negative");
  SR_CHECK(c.sliding_window >= 0, "[config] ", src, ": sliding_window ", c.sliding_window, " is negative");
  const struct { const char* what; int64_t a, b; } products[] = {
      {"num_attention_heads x head_dim", c.n_heads, c.head_dim},
      {"num_key_value_heads x head_dim", c.n_kv_heads, c.head_dim},
      {"hidden_size x num_attention_heads x head_dim", c.hidden, c.n_heads * c.head_dim},
      {"hidden_size x intermediate_size", c.hidden, c.intermediate},
      {"vocab_size x hidden_size", c.vocab, c.hidden},
      {"hidden_size x moe_intermediate_size", c.hidden, c.moe.expert_intermediate},
      {"hidden_size x shared_expert_intermediate_size", c.hidden, c.moe.shared_intermediate},
  };
  for (const auto& p : products) {
    int64_t n = 0;
    SR_CHECK(limits::checked_mul(p.a, p.b, &n) && n <= limits::kMaxMatrixElements, "[config] ", src, ": ", p.what,
             " = ", p.a, " x ", p.b, " is over the limit of ", limits::kMaxMatrixElements, " elements");
  }
}

void check_moe(const MoeConfig& m, const std::string& src) {
  if (m.n_experts == 0 && m.n_used == 0) return;
  SR_CHECK(m.n_experts > 0, "[config] ", src, ": num_experts must be positive, got ", m.n_experts);
  SR_CHECK(m.n_used >= 1 && m.n_used <= m.n_experts, "[config] ", src, ": num_experts_per_tok ", m.n_used,
           " must lie in [1, num_experts = ", m.n_experts, "]");
  SR_CHECK(m.expert_intermediate > 0, "[config] ", src, ": the experts' intermediate size must be positive, got ",
           m.expert_intermediate);
  SR_CHECK(m.shared_intermediate >= 0, "[config] ", src, ": shared_expert_intermediate_size must not be negative, got ",
           m.shared_intermediate);
}

}  // namespace

void validate_config(const ModelConfig& c, const std::string& src) {
  check_upper_limits(c, src);
  SR_CHECK(c.hidden > 0 && c.intermediate > 0 && c.n_layers > 0 && c.n_heads > 0 && c.n_kv_heads > 0 &&
               c.head_dim > 0 && c.vocab > 0,
           "[config] ", src, ": sizes must be positive (hidden ", c.hidden, ", intermediate ", c.intermediate,
           ", layers ", c.n_layers, ", heads ", c.n_heads, "/", c.n_kv_heads, ", head_dim ", c.head_dim,
           ", vocab ", c.vocab, ")");
  check_products(c, src);
  SR_CHECK(c.n_heads % c.n_kv_heads == 0, "[config] ", src, ": num_attention_heads ", c.n_heads,
           " is not a multiple of num_key_value_heads ", c.n_kv_heads);
  SR_CHECK(c.head_dim % 2 == 0, "[config] ", src, ": head_dim ", c.head_dim, " must be even for RoPE");
  SR_CHECK(c.rms_eps > 0 && std::isfinite(c.rms_eps), "[config] ", src, ": rms_norm_eps must be positive, got ",
           c.rms_eps);
  SR_CHECK(c.rope_theta > 0 && std::isfinite(c.rope_theta), "[config] ", src, ": rope_theta must be positive, got ",
           c.rope_theta);
  check_moe(c.moe, src);
}

ModelConfig config_from_llama2c(const Llama2cHeader& h, const std::string& path) {
  ModelConfig c;
  c.hidden = h.dim;
  c.intermediate = h.hidden_dim;
  c.n_layers = h.n_layers;
  c.n_heads = h.n_heads;
  c.n_kv_heads = h.n_kv_heads;
  c.head_dim = h.dim / h.n_heads;
  c.vocab = h.vocab_size;
  c.max_position = h.seq_len;
  c.tie_embeddings = h.shared_classifier;
  c.rms_eps = 1e-5;  // run.c's rmsnorm constant
  c.arch_name = "llama2.c";
  validate_config(c, path);
  return c;
}

}  // namespace sr
