#include "export/gguf_from_model.h"

#include "common/progress.h"
#include "model/gguf_names.h"
#include "model/matrix_rows.h"

namespace sr {
namespace {

// imatrix entries keyed by GGUF name; throws for names that are no tensor of `w`.
std::map<std::string, at::Tensor> imatrix_by_gguf_name(const GgufModelWriter& w,
                                                       const std::map<std::string, at::Tensor>& in) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, values] : in) out[w.planned(name).name] = values;
  return out;
}

struct Sink {
  GgufModelWriter& w;
  const std::map<std::string, at::Tensor>& imatrix;

  void put(const std::string& hf_name, const at::Tensor& t) {
    auto it = imatrix.find(gguf_tensor_name(hf_name));
    w.write_float(hf_name, t, it == imatrix.end() ? at::Tensor() : it->second);
  }
  // Expert e's slice of the stacked tensor `gguf_name` (imatrix files carry none per expert here).
  void put_expert(const std::string& gguf_name, const at::Tensor& t, int64_t e) { w.write_float(gguf_name, t, {}, e); }

  // A vocabulary-sized matrix a chunk of rows at a time (model/matrix_rows.h).
  void put_rows(const Model& m, const char* hf_name) {
    auto it = imatrix.find(gguf_tensor_name(hf_name));
    w.write_float_rows(hf_name, [&m, hf_name](int64_t r0, int64_t n) { return vocab_matrix_rows(m, hf_name, r0, n); },
                       it == imatrix.end() ? at::Tensor() : it->second);
  }
};

// Tensors outside the blocks first: they come first in llama-quantize's order, so the two large
// matrices go to the file as they are encoded.
void write_top_level(const Model& m, Sink& s) {
  if (!m.config().tie_embeddings) s.put_rows(m, "lm_head.weight");
  s.put("model.norm.weight", m.final_norm());
  s.put_rows(m, "model.embed_tokens.weight");
}

void write_block(const Model& m, int64_t i, Sink& s) {
  const BlockWeights b = m.load_block(i);
  const BlockDesc& d = m.block_desc(i);
  const std::string pre = block_prefix(i);
  for (size_t j = 0; j < d.norms.size(); ++j)
    if (d.norms[j].present) s.put(pre + d.norms[j].module + ".weight", b.norm[j]);
  for (size_t j = 0; j < d.linears.size(); ++j) {
    const LinearDesc& l = d.linears[j];
    const std::string name = "blk." + std::to_string(i) + "." + l.gguf + ".weight";
    if (l.bias) s.put(pre + l.module + ".bias", b.b[j]);
    if (l.expert >= 0) s.put_expert(name, b.w[j], l.expert);
    else s.put(name, b.w[j]);
  }
}

}  // namespace

std::vector<GgufTensorPlan> export_gguf(const Model& m, const std::string& path, GgufMix mix,
                                        const GgufModelExportOptions& opt) {
  GgufPlanOptions plan_opt = opt.plan;
  plan_opt.has_imatrix = plan_opt.has_imatrix || !opt.imatrix.empty();
  const Vocabulary& vocab = opt.vocabulary ? *opt.vocabulary : m.tokenizer().vocabulary();
  GgufExportOptions file = opt.file;
  file.progress = file.progress || opt.progress;
  file.source = gguf_source_of(m.path(), vocab);
  if (opt.vocabulary) file.source.special = {};  // another tokenizer than the folder's: its own ids
  GgufModelWriter w(path, m.config(), vocab, mix, plan_gguf_types(m.config(), mix, plan_opt), file);
  const std::map<std::string, at::Tensor> imatrix = imatrix_by_gguf_name(w, opt.imatrix);
  Sink sink{w, imatrix};
  write_top_level(m, sink);
  Progress progress(std::string("gguf ") + gguf_mix_info(mix).name, int(m.config().n_layers), opt.progress);
  for (int64_t i = 0; i < m.config().n_layers; ++i) {
    write_block(m, i, sink);
    progress.update(int(i + 1));
  }
  progress.finish();
  w.finish();
  return w.plan();
}

}  // namespace sr
