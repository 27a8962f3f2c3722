#include "random_model.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/torch.h"
#include "export/gguf_from_model.h"
#include "io/safetensors.h"
#include "model/model.h"

namespace sr::test {
namespace fs = std::filesystem;

namespace {

struct Named { std::string name; at::Tensor t; };

std::vector<Named> random_tensors(const RandomModelSpec& s) {
  at::manual_seed(s.seed);
  const int64_t hd = s.hidden / s.heads, D = s.hidden, F = s.intermediate;
  // extra_config_json {"attention_bias": true} (a Llama with q/k/v biases) gets biases as Qwen2 has them.
  const bool extra_bias = !s.extra_config_json.empty() &&
                          nlohmann::json::parse(s.extra_config_json).value("attention_bias", false);
  const bool qwen2 = s.arch == "Qwen2ForCausalLM" || s.arch == "Qwen2MoeForCausalLM" || extra_bias,
             qwen3 = s.arch == "Qwen3ForCausalLM" || s.arch == "Qwen3MoeForCausalLM";
  const bool mixtral = s.arch == "MixtralForCausalLM";
  std::vector<Named> out;
  auto add = [&](const std::string& n, std::vector<int64_t> shape, bool norm = false) {
    at::Tensor t = norm ? 1.0 + 0.1 * at::randn(shape) : s.scale * at::randn(shape);
    out.push_back({n, t});
  };
  add("model.embed_tokens.weight", {s.vocab, D});
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {D}, true);
    add(p + "self_attn.q_proj.weight", {s.heads * hd, D});
    add(p + "self_attn.k_proj.weight", {s.kv_heads * hd, D});
    add(p + "self_attn.v_proj.weight", {s.kv_heads * hd, D});
    if (qwen2) {
      add(p + "self_attn.q_proj.bias", {s.heads * hd});
      add(p + "self_attn.k_proj.bias", {s.kv_heads * hd});
      add(p + "self_attn.v_proj.bias", {s.kv_heads * hd});
    }
    if (qwen3) {
      add(p + "self_attn.q_norm.weight", {hd}, true);
      add(p + "self_attn.k_norm.weight", {hd}, true);
    }
    add(p + "self_attn.o_proj.weight", {D, s.heads * hd});
    add(p + "post_attention_layernorm.weight", {D}, true);
    const bool dense_block = s.experts > 0 && (std::count(s.mlp_only_layers.begin(), s.mlp_only_layers.end(), l) > 0 ||
                                                (l + 1) % s.sparse_step != 0);
    if (s.experts == 0 || dense_block) {
      const int64_t Fd = dense_block && s.dense_intermediate > 0 ? s.dense_intermediate : F;
      add(p + "mlp.gate_proj.weight", {Fd, D});
      add(p + "mlp.up_proj.weight", {Fd, D});
      add(p + "mlp.down_proj.weight", {D, Fd});
      continue;
    }
    // Router logits of a few units, so that routing is decided (not near-ties).
    const std::string moe = p + (mixtral ? "block_sparse_moe." : "mlp.");
    out.push_back({moe + "gate.weight", 1.0 / std::sqrt(double(D)) * at::randn({s.experts, D})});
    for (int64_t e = 0; e < s.experts; ++e) {
      const std::string x = moe + "experts." + std::to_string(e) + ".";
      add(x + (mixtral ? "w1" : "gate_proj") + ".weight", {F, D});
      add(x + (mixtral ? "w3" : "up_proj") + ".weight", {F, D});
      add(x + (mixtral ? "w2" : "down_proj") + ".weight", {D, F});
    }
    if (s.arch == "Qwen2MoeForCausalLM") {
      add(p + "mlp.shared_expert.gate_proj.weight", {s.shared_intermediate, D});
      add(p + "mlp.shared_expert.up_proj.weight", {s.shared_intermediate, D});
      add(p + "mlp.shared_expert.down_proj.weight", {D, s.shared_intermediate});
      add(p + "mlp.shared_expert_gate.weight", {1, D});
    }
  }
  add("model.norm.weight", {D}, true);
  if (!s.tied) add("lm_head.weight", {s.vocab, D});
  return out;
}

at::ScalarType scalar_type(const std::string& dtype) {
  if (dtype == "F16") return at::kHalf;
  if (dtype == "BF16") return at::kBFloat16;
  return at::kFloat;
}

void write_shard(const std::string& path, const std::vector<Named>& ts, const std::string& dtype) {
  SafetensorsWriter w;
  for (auto& n : ts) w.declare(n.name, dtype, n.t.sizes().vec());
  w.begin(path);
  for (auto& n : ts) {
    at::Tensor c = n.t.to(scalar_type(dtype)).contiguous();
    w.write(n.name, c.data_ptr(), uint64_t(c.numel() * c.element_size()));
  }
  w.finish();
}

}  // namespace

std::string write_random_hf_model(const std::string& dir, const RandomModelSpec& s) {
  fs::create_directories(dir);
  nlohmann::json cfg = {
      {"architectures", {s.arch}},          {"hidden_size", s.hidden},
      {"intermediate_size", s.intermediate}, {"num_hidden_layers", s.layers},
      {"num_attention_heads", s.heads},      {"num_key_value_heads", s.kv_heads},
      {"vocab_size", s.vocab},               {"max_position_embeddings", s.max_position},
      {"rope_theta", 10000.0},               {"rms_norm_eps", 1e-5},
      {"tie_word_embeddings", s.tied},       {"hidden_act", "silu"},
      {"bos_token_id", 1},                   {"eos_token_id", 2},
      {"torch_dtype", s.dtype == "F32" ? "float32" : s.dtype == "F16" ? "float16" : "bfloat16"}};
  if (s.experts > 0) {
    cfg[s.arch == "MixtralForCausalLM" ? "num_local_experts" : "num_experts"] = s.experts;
    cfg["num_experts_per_tok"] = s.experts_used;
    cfg["moe_intermediate_size"] = s.intermediate;
    cfg["norm_topk_prob"] = s.norm_topk_prob;
    if (s.arch == "Qwen2MoeForCausalLM") cfg["shared_expert_intermediate_size"] = s.shared_intermediate;
    if (s.sparse_step != 1) cfg["decoder_sparse_step"] = s.sparse_step;
    if (!s.mlp_only_layers.empty()) cfg["mlp_only_layers"] = s.mlp_only_layers;
    if (s.dense_intermediate > 0) cfg["intermediate_size"] = s.dense_intermediate;
  }
  cfg["rope_scaling"] = s.rope_scaling_json.empty() ? nlohmann::json() : nlohmann::json::parse(s.rope_scaling_json);
  if (!s.extra_config_json.empty()) cfg.update(nlohmann::json::parse(s.extra_config_json));
  std::ofstream(fs::path(dir) / "config.json") << cfg.dump(2);
  std::vector<Named> all = random_tensors(s);
  if (s.shards <= 1) {
    write_shard((fs::path(dir) / "model.safetensors").string(), all, s.dtype);
    return dir;
  }
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
  const size_t per = (all.size() + size_t(s.shards) - 1) / size_t(s.shards);
  for (int k = 0; k < s.shards; ++k) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k + 1, s.shards);
    std::vector<Named> part(all.begin() + std::min(all.size(), k * per), all.begin() + std::min(all.size(), (k + 1) * per));
    for (auto& n : part) index["weight_map"][n.name] = name;
    write_shard((fs::path(dir) / name).string(), part, s.dtype);
  }
  std::ofstream(fs::path(dir) / "model.safetensors.index.json") << index.dump(2);
  return dir;
}

Vocabulary synthetic_vocabulary(int64_t size) {
  Vocabulary v;
  v.source = "synthetic vocabulary";
  for (int64_t i = 0; i < size; ++i) {
    v.pieces.push_back(i == 0 ? "<unk>" : i == 1 ? "<s>" : i == 2 ? "</s>" : "\xE2\x96\x81t" + std::to_string(i));
    v.scores.push_back(i < 3 ? 0.0f : -float(i));
    v.kinds.push_back(i == 0 ? PieceKind::Unknown : i < 3 ? PieceKind::Control : PieceKind::Normal);
  }
  return v;
}

std::string write_random_gguf_model(const std::string& dir, const RandomModelSpec& spec, const std::string& mix) {
  auto m = Model::open(write_random_hf_model(dir + "/hf", spec));
  const Vocabulary vocab = synthetic_vocabulary(spec.vocab);
  GgufModelExportOptions opt;
  opt.vocabulary = &vocab;
  opt.progress = false;
  opt.plan.log = false;
  const std::string path = dir + "/model-" + mix + ".gguf";
  export_gguf(*m, path, parse_gguf_mix(mix), opt);
  return path;
}

std::string write_vocabulary_text(const std::string& path, int words) {
  std::string text;
  for (int i = 0; i < words; ++i) text += "t" + std::to_string(3 + (i * 13) % 90) + " ";
  std::ofstream(path) << text;
  return path;
}

}  // namespace sr::test
