// --format fake: a plain Hugging Face folder whose quantized projections hold their
// dequantized (fake-quant) values in the source dtype (F32 stays F32), plus
// quantization.json recording every layer's scheme so eval applies activation
// quantization where the scheme has it. Loadable by transformers as a normal model.
#include <filesystem>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/progress.h"
#include "export/export_job.h"
#include "export/hf_folder.h"

namespace sr {
namespace fs = std::filesystem;

nlohmann::json quantization_record(const std::string& format, const ExportJob& job,
                                   const std::vector<QuantizedLayer>& all) {
  nlohmann::json act = nlohmann::json::object();
  for (const QuantizedLayer& l : all)
    if (l.act.act_max.defined()) act[l.name] = l.act.act_max.item<double>();
  return {{"format", format}, {"quantizer", "signround"}, {"layers", nlohmann::json(job.plan->to_json())},
          {"act_max", act}, {"average_bits", job.plan->average_bits()}};
}

void export_fake(const ExportJob& job, const std::string& out_dir) {
  const Model& m = *job.model;
  const ModelConfig& c = m.config();
  const at::ScalarType dtype = source_dtype(m);
  AtomicPath out(out_dir);
  fs::create_directories(out.temp());
  SafetensorsStreamWriter st(out.temp(), job.max_shard_bytes);
  add_vocab_matrix(st, m, "model.embed_tokens.weight", dtype);
  std::vector<QuantizedLayer> all;
  Progress progress("export fake blocks", int(c.n_layers), job.progress);
  for (int64_t b = 0; b < c.n_layers; ++b) {
    BlockWeights w = m.load_block(b);
    for (QuantizedLayer& l : job.block_layers(b)) {
      const LayerChoice* ch = job.plan->find(l.name);
      SR_CHECK(ch, "[export fake] layer ", l.name, " is not in the plan");
      w.weight(ch->linear) = l.dequantized();
      all.push_back({l.name, l.scheme, {}, l.act});  // the record needs no codes: never hold the model
    }
    add_block_tensors(st, m.block_desc(b), b, w, dtype);
    progress.update(int(b + 1));
  }
  add_tensor(st, "model.norm.weight", m.final_norm(), dtype);
  if (!c.tie_embeddings) {
    at::Tensor head;
    for (const QuantizedLayer& l : job.head_layers) head = l.dequantized(), all.push_back(l);
    if (head.defined()) add_tensor(st, "lm_head.weight", head, dtype);
    else add_vocab_matrix(st, m, "lm_head.weight", dtype);
  }
  st.set_metadata({{"format", "pt"}});
  st.finish();
  write_json(out.temp(), "config.json", hf_config(m));
  copy_tokenizer_files(m, out.temp());
  write_json(out.temp(), "quantization.json", quantization_record("fake", job, all));
  write_json(out.temp(), "signround_run.json", job.record);
  out.commit();
}

}  // namespace sr
