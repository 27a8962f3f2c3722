#include "export/hf_folder.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "common/json_parse.h"
#include "model/matrix_rows.h"
#include "model/tensor_convert.h"

namespace sr {
namespace fs = std::filesystem;

at::ScalarType source_dtype(const Model& model) {
  const std::string& d = model.config().dtype;
  if (d == "F16") return at::kHalf;
  if (d == "BF16") return at::kBFloat16;
  return at::kFloat;
}

static std::string source_dir(const Model& model) {
  return fs::is_directory(model.path()) ? model.path() : fs::path(model.path()).parent_path().string();
}

nlohmann::json hf_config(const Model& model, const nlohmann::json& extra) {
  nlohmann::json j;
  const fs::path own = fs::path(model.path()) / "config.json";
  if (model.format() == "safetensors" && fs::exists(own)) {
    j = read_json_file(own.string());
  } else {
    const ModelConfig& c = model.config();
    j = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"},
         {"hidden_size", c.hidden}, {"intermediate_size", c.intermediate},
         {"num_hidden_layers", c.n_layers}, {"num_attention_heads", c.n_heads},
         {"num_key_value_heads", c.n_kv_heads}, {"head_dim", c.head_dim},
         {"vocab_size", c.vocab}, {"max_position_embeddings", c.max_position},
         {"rope_theta", c.rope_theta}, {"rms_norm_eps", c.rms_eps},
         {"tie_word_embeddings", c.tie_embeddings}, {"hidden_act", "silu"},
         {"bos_token_id", c.bos_id}, {"eos_token_id", c.eos_id},
         {"torch_dtype", source_dtype(model) == at::kFloat ? "float32" : source_dtype(model) == at::kHalf ? "float16" : "bfloat16"}};
  }
  // A vocabulary without BOS/EOS (Qwen2's byte-level one has no BOS) has id -1: null.
  for (const char* key : {"bos_token_id", "eos_token_id"})
    if (j.contains(key) && j[key].is_number_integer() && j[key].get<int64_t>() < 0) j[key] = nullptr;
  j.erase("quantization_config");  // a quantized source's; the format adds its own
  j.update(extra);
  return j;
}

void copy_tokenizer_files(const Model& model, const std::string& dir) {
  const fs::path src = source_dir(model);
  for (const char* f : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                        "generation_config.json", "tokenizer.bin"}) {
    if (fs::exists(src / f)) fs::copy_file(src / f, fs::path(dir) / f, fs::copy_options::overwrite_existing);
  }
  const std::string tok = "tok" + std::to_string(model.config().vocab) + ".bin";
  if (fs::exists(src / tok) && !fs::exists(src / "tokenizer.bin"))
    fs::copy_file(src / tok, fs::path(dir) / "tokenizer.bin", fs::copy_options::overwrite_existing);
}

void add_tensor(SafetensorsStreamWriter& out, const std::string& name, const at::Tensor& t) {
  at::Tensor c = t.detach().cpu().contiguous();
  out.add(name, dtype_name(c.scalar_type()), c.sizes().vec(), c.data_ptr(), uint64_t(c.nbytes()));
}

void add_tensor(SafetensorsStreamWriter& out, const std::string& name, const at::Tensor& t, at::ScalarType dtype) {
  add_tensor(out, name, t.to(dtype));
}

void add_vocab_matrix(SafetensorsStreamWriter& out, const Model& m, const std::string& name, at::ScalarType dtype,
                      int64_t chunk_rows) {
  const int64_t V = m.config().vocab, D = m.config().hidden;
  const int64_t chunk =
      chunk_rows > 0 ? chunk_rows : std::max<int64_t>(1, (int64_t(64) << 20) / (4 * std::max<int64_t>(D, 1)));
  out.add_parts(name, dtype_name(dtype), {V, D}, [&](const SafetensorsStreamWriter::PartWriter& write) {
    for (int64_t r0 = 0; r0 < V; r0 += chunk) {
      const at::Tensor rows = vocab_matrix_rows(m, name, r0, std::min(chunk, V - r0)).to(dtype).contiguous();
      write(rows.data_ptr(), uint64_t(rows.nbytes()));
    }
  });
}

void add_block_tensors(SafetensorsStreamWriter& out, const BlockDesc& d, int64_t b, const BlockWeights& w,
                       at::ScalarType dtype, const std::vector<int>& skip) {
  const std::string pre = block_prefix(b);
  auto add_norm = [&](size_t i) {
    if (d.norms[i].present) add_tensor(out, pre + d.norms[i].module + ".weight", w.norm[i], dtype);
  };
  add_norm(0);
  for (size_t i = 0; i < d.linears.size(); ++i) {
    if (std::find(skip.begin(), skip.end(), int(i)) != skip.end()) continue;
    add_tensor(out, pre + d.linears[i].module + ".weight", w.w[i], dtype);
    if (w.b[i].defined()) add_tensor(out, pre + d.linears[i].module + ".bias", w.b[i], dtype);
  }
  for (int i : skip)
    if (w.b[size_t(i)].defined()) add_tensor(out, pre + d.linears[size_t(i)].module + ".bias", w.b[size_t(i)], dtype);
  for (size_t i = 1; i < d.norms.size(); ++i) add_norm(i);
}

void write_json(const std::string& dir, const std::string& name, const nlohmann::json& json) {
  std::ofstream out(fs::path(dir) / name);
  out << json.dump(2) << "\n";
  SR_CHECK(out.good(), "[export] cannot write ", (fs::path(dir) / name).string());
}

}  // namespace sr
