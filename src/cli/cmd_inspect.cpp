// signround inspect --model PATH [--json]: what a model is made of.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "common/progress.h"

namespace sr::cli {

namespace {

const std::vector<FlagSpec> kInspectFlags = {
    {"model", true, "model: HF folder, .gguf file or llama2.c .bin", ""},
    {"json", false, "print one JSON object instead of tables", ""},
};

uint64_t size_on_disk(const std::string& path) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(path)) return fs::file_size(path);
  uint64_t n = 0;
  for (auto& e : fs::directory_iterator(path))
    if (e.is_regular_file()) n += e.file_size();
  return n;
}

// Parameters a token uses: all of them, less the experts it is not routed to (E - k per sparse
// block; a dense block's MLP is used whole).
int64_t active_parameters(const Model& m) {
  const MoeConfig& e = m.config().moe;
  int64_t sparse = 0;
  for (int64_t b = 0; b < m.config().n_layers; ++b) sparse += m.config().sparse_block(b) ? 1 : 0;
  return m.parameter_count() - sparse * (e.n_experts - e.n_used) * 3 * m.config().hidden * e.expert_intermediate;
}

// The blocks of a MoE model that keep a dense MLP (decoder_sparse_step, mlp_only_layers).
std::vector<int64_t> dense_blocks(const ModelConfig& c) {
  std::vector<int64_t> out;
  for (int64_t b = 0; b < c.n_layers; ++b)
    if (!c.sparse_block(b)) out.push_back(b);
  return out;
}

nlohmann::json describe(const Model& m) {
  const ModelConfig& c = m.config();
  nlohmann::json tensors = nlohmann::json::array();
  for (const std::string& n : m.tensors().names()) {
    const TensorEntry& e = m.tensors().get(n);
    tensors.push_back({{"name", n}, {"shape", e.shape}, {"dtype", e.dtype}, {"bytes", e.nbytes}});
  }
  nlohmann::json moe = nullptr;
  if (c.is_moe())
    moe = {{"experts", c.moe.n_experts}, {"experts_per_token", c.moe.n_used},
           {"expert_intermediate_size", c.moe.expert_intermediate},
           {"shared_expert_intermediate_size", c.moe.shared_intermediate}, {"norm_topk_prob", c.moe.norm_topk_prob},
           {"active_parameters", active_parameters(m)}};
  if (c.has_dense_blocks()) moe["dense_blocks"] = dense_blocks(c);  // absent when every block is sparse
  return {{"path", m.path()}, {"format", m.format()}, {"architecture", c.arch_name}, {"moe", moe},
          {"hidden_size", c.hidden}, {"intermediate_size", c.intermediate}, {"num_hidden_layers", c.n_layers},
          {"num_attention_heads", c.n_heads}, {"num_key_value_heads", c.n_kv_heads}, {"head_dim", c.head_dim},
          {"vocab_size", c.vocab}, {"max_position_embeddings", c.max_position}, {"rope_theta", c.rope_theta},
          {"rope_scaling", c.rope_scaling.type}, {"rms_norm_eps", c.rms_eps},
          {"tie_word_embeddings", c.tie_embeddings}, {"parameters", m.parameter_count()},
          {"size_bytes", size_on_disk(m.path())},
          {"tokenizer", m.has_tokenizer() ? m.tokenizer().vocabulary().source : ""}, {"tensors", tensors}};
}

}  // namespace

int cmd_inspect(int argc, char** argv) {
  Args a("inspect", kInspectFlags, argc, argv);
  if (a.help("architecture, shapes, dtypes, parameter count and size of a model")) return 0;
  apply_common(a);
  auto model = open_model(a, a.required("model"), false);
  nlohmann::json j = describe(*model);
  if (a.flag("json")) return print_json(j);
  std::map<std::string, int64_t> dtype_count;
  for (auto& t : j["tensors"]) dtype_count[t["dtype"].get<std::string>()] += 1;
  std::string dtypes;
  for (auto& [d, n] : dtype_count) dtypes += (dtypes.empty() ? "" : ", ") + d + " x" + std::to_string(n);
  std::printf("model          %s (%s)\n", model->path().c_str(), model->format().c_str());
  std::printf("architecture   %s\n", j["architecture"].get<std::string>().c_str());
  const ModelConfig& c = model->config();
  std::printf("shape          %lld layers, hidden %lld, intermediate %lld, heads %lld/%lld kv, head_dim %lld\n",
              (long long)c.n_layers, (long long)c.hidden, (long long)c.intermediate, (long long)c.n_heads,
              (long long)c.n_kv_heads, (long long)c.head_dim);
  std::printf("vocab          %lld%s\n", (long long)c.vocab, c.tie_embeddings ? " (tied embeddings)" : "");
  std::printf("rope           theta %g, scaling %s, max positions %lld\n", c.rope_theta, c.rope_scaling.type.c_str(),
              (long long)c.max_position);
  if (c.is_moe())
    std::printf("experts        %lld, %lld per token, intermediate %lld%s\n", (long long)c.moe.n_experts,
                (long long)c.moe.n_used, (long long)c.moe.expert_intermediate,
                c.moe.shared_intermediate > 0 ? (", shared expert " + std::to_string(c.moe.shared_intermediate)).c_str() : "");
  if (c.has_dense_blocks()) {
    std::string list;
    for (int64_t b : dense_blocks(c)) list += (list.empty() ? "" : ", ") + std::to_string(b);
    std::printf("dense blocks   %s (MLP intermediate %lld)\n", list.c_str(), (long long)c.intermediate);
  }
  std::printf("parameters     %lld", (long long)model->parameter_count());
  if (c.is_moe()) std::printf(" (%lld active per token)", (long long)active_parameters(*model));
  std::printf("\n");
  std::printf("size           %s on disk\n", format_bytes(double(j["size_bytes"].get<uint64_t>())).c_str());
  std::printf("dtypes         %s\n", dtypes.c_str());
  std::printf("tokenizer      %s\n", model->has_tokenizer() ? j["tokenizer"].get<std::string>().c_str() : "(none)");
  std::printf("\n%-52s %-16s %s\n", "tensor", "shape", "dtype");
  for (auto& t : j["tensors"]) {
    std::string shape;
    for (auto& d : t["shape"]) shape += (shape.empty() ? "" : "x") + std::to_string(d.get<int64_t>());
    std::printf("%-52s %-16s %s\n", t["name"].get<std::string>().c_str(), shape.c_str(),
                t["dtype"].get<std::string>().c_str());
  }
  return 0;
}

}  // namespace sr::cli
