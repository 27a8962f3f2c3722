// The writer shared by auto_round and auto_gptq: stream the model block by block into
// (sharded) safetensors, packing the quantized linears (export/packed_tensors.h).
#include <algorithm>
#include <filesystem>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/progress.h"
#include "export/hf_folder.h"
#include "export/packed_export.h"

namespace sr {
namespace fs = std::filesystem;
namespace {

void add_stored(SafetensorsStreamWriter& st, const StoredTensor& t) {
  at::Tensor c = t.data.contiguous();
  st.add(t.name, t.dtype, c.sizes().vec(), c.data_ptr(), uint64_t(c.nbytes()));
}

// What quantization.json needs of a layer once it is written: no codes.
QuantizedLayer record_only(const QuantizedLayer& l) { return {l.name, l.scheme, {}, l.act}; }

// Packs the delivered layers of block b; returns the projections they replace.
std::vector<int> add_block_layers(SafetensorsStreamWriter& st, const ExportJob& job, int64_t b,
                                   const PackOptions& pack, std::vector<QuantizedLayer>& record) {
  std::vector<int> packed;
  for (const QuantizedLayer& l : job.block_layers(b)) {
    const LayerChoice* ch = job.plan->find(l.name);
    SR_CHECK(ch && ch->block == b, "[export] layer ", l.name, " is not in block ", b, " of the plan");
    SR_CHECK(ch->scheme == l.scheme, "[export] layer ", l.name, " was quantized as ", l.scheme.name(),
             " but the plan says ", ch->scheme.name());
    for (const StoredTensor& t : pack_layer(l, pack)) add_stored(st, t);
    packed.push_back(ch->linear);
    record.push_back(record_only(l));
  }
  for (int p = 0; p < int(job.plan->blocks[b].linears.size()); ++p) {
    const LayerChoice* ch = job.plan->find(b, p);
    const bool done = std::find(packed.begin(), packed.end(), p) != packed.end();
    SR_CHECK(!ch || ch->quantized() == done, "[export] block ", b, ": layer ", linear_name(job.plan->blocks[b], b, p),
             ch && ch->quantized() ? " is quantized in the plan but its state is missing"
                                   : " is delivered quantized but the plan keeps it in 16 bit");
  }
  return packed;
}

}  // namespace

void write_packed_folder(const ExportJob& job, const std::string& out_dir, const PackedFolderSpec& spec) {
  const Model& m = *job.model;
  const ModelConfig& c = m.config();
  const at::ScalarType dtype = source_dtype(m);
  AtomicPath out(out_dir);
  fs::create_directories(out.temp());
  std::vector<QuantizedLayer> record;
  {
    SafetensorsStreamWriter st(out.temp(), job.max_shard_bytes);
    add_vocab_matrix(st, m, "model.embed_tokens.weight", dtype);
    Progress progress("export " + spec.format + " blocks", int(c.n_layers), job.progress);
    for (int64_t b = 0; b < c.n_layers; ++b) {
      const std::vector<int> packed = add_block_layers(st, job, b, spec.pack, record);
      add_block_tensors(st, m.block_desc(b), b, m.load_block(b, packed), dtype, packed);
      progress.update(int(b + 1));
    }
    add_tensor(st, "model.norm.weight", m.final_norm(), dtype);
    if (!c.tie_embeddings) {
      bool head_packed = false;
      for (const QuantizedLayer& l : job.head_layers) {
        SR_CHECK(l.name == "lm_head", "[export] unexpected head layer ", l.name);
        for (const StoredTensor& t : pack_layer(l, spec.pack)) add_stored(st, t);
        record.push_back(record_only(l));
        head_packed = true;
      }
      if (!head_packed) add_vocab_matrix(st, m, "lm_head.weight", dtype);
    }
    st.set_metadata({{"format", "pt"}});
    st.finish();
  }
  const nlohmann::json qc = spec.quantization_config;  // keys sorted, as config.json has them
  nlohmann::json config = hf_config(m, {{"quantization_config", qc}});
  if (!spec.torch_dtype.empty()) config["torch_dtype"] = spec.torch_dtype;
  write_json(out.temp(), "config.json", config);
  write_json(out.temp(), "quantization_config.json", qc);
  copy_tokenizer_files(m, out.temp());
  write_json(out.temp(), "quantization.json", quantization_record(spec.format, job, record));
  write_json(out.temp(), "signround_run.json", job.record);
  out.commit();
}

}  // namespace sr
