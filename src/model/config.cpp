#include "model/config.h"

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace sr {
using nlohmann::json;

std::string arch_label(Arch a) {
  switch (a) {
    case Arch::Llama: return "llama";
    case Arch::Mistral: return "mistral";
    case Arch::Qwen2: return "qwen2";
    case Arch::Qwen3: return "qwen3";
  }
  return "?";
}

namespace {

struct ArchRow { const char* hf_name; Arch arch; bool qkv_bias; bool qk_norm; };
// Architectures we run, and what each adds to the plain Llama block.
constexpr ArchRow kArchs[] = {
    {"LlamaForCausalLM", Arch::Llama, false, false},
    {"MistralForCausalLM", Arch::Mistral, false, false},
    {"Qwen2ForCausalLM", Arch::Qwen2, true, false},
    {"Qwen3ForCausalLM", Arch::Qwen3, false, true},
};

template <typename T>
T field(const json& j, const char* key, const std::string& path) {
  SR_CHECK(j.contains(key) && !j[key].is_null(), "[config] ", path, ": missing field '", key, "'");
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
  SR_CHECK(r.type == "none" || r.type == "llama3" || r.type == "linear", "[config] ", path,
           ": rope_scaling type '", r.type, "' is not supported (none, linear, llama3)");
  return r;
}

}  // namespace

ModelConfig parse_hf_config(const std::string& text, const std::string& path) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& ex) {
    fail("[config] ", path, ": not valid JSON: ", ex.what());
  }
  SR_CHECK(j.is_object(), "[config] ", path, ": not a JSON object");
  ModelConfig c;
  std::string name = "LlamaForCausalLM";
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty())
    name = j["architectures"][0].is_string() ? j["architectures"][0].get<std::string>() : "";
  const ArchRow* row = nullptr;
  for (const ArchRow& r : kArchs) if (name == r.hf_name) row = &r;
  SR_CHECK(row, "[config] ", path, ": architecture '", name,
           "' is not supported (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)");
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
  const bool sliding = c.arch == Arch::Mistral || field_or<bool>(j, "use_sliding_window", false, path);
  if (sliding) c.sliding_window = field_or<int64_t>(j, "sliding_window", 0, path);
  c.bos_id = j.contains("bos_token_id") && j["bos_token_id"].is_number_integer() ? j["bos_token_id"].get<int32_t>() : 1;
  c.eos_id = j.contains("eos_token_id") && j["eos_token_id"].is_number_integer() ? j["eos_token_id"].get<int32_t>() : 2;
  const std::string act = field_or<std::string>(j, "hidden_act", "silu", path);
  SR_CHECK(act == "silu", "[config] ", path, ": hidden_act '", act, "' is not supported (silu)");
  SR_CHECK(!field_or<bool>(j, "mlp_bias", false, path), "[config] ", path, ": mlp_bias is not supported");
  validate_config(c, path);
  return c;
}

void validate_config(const ModelConfig& c, const std::string& src) {
  SR_CHECK(c.hidden > 0 && c.intermediate > 0 && c.n_layers > 0 && c.n_heads > 0 && c.n_kv_heads > 0 &&
               c.head_dim > 0 && c.vocab > 0,
           "[config] ", src, ": sizes must be positive (hidden ", c.hidden, ", intermediate ", c.intermediate,
           ", layers ", c.n_layers, ", heads ", c.n_heads, "/", c.n_kv_heads, ", head_dim ", c.head_dim,
           ", vocab ", c.vocab, ")");
  SR_CHECK(c.n_heads % c.n_kv_heads == 0, "[config] ", src, ": num_attention_heads ", c.n_heads,
           " is not a multiple of num_key_value_heads ", c.n_kv_heads);
  SR_CHECK(c.head_dim % 2 == 0, "[config] ", src, ": head_dim ", c.head_dim, " must be even for RoPE");
  SR_CHECK(c.rms_eps > 0, "[config] ", src, ": rms_norm_eps must be positive");
}

}  // namespace sr
