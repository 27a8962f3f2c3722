// The packed safetensors export formats (spec §5.1-§5.3; docs/formats-safetensors.md):
//   auto_round  INT weight-only 2..8 bits ("auto_round:auto_gptq" when every INT layer is
//               sym, zero stored as zp - 1; "auto_round" when some layer is asym, zero
//               stored as is), or MXFP4 / MXFP8 / NVFP4 ("auto_round:llm_compressor").
//   auto_gptq   INT weight-only, sym, 2/3/4/8 bits, GPTQ v1 layout with g_idx.
// Both write a Hugging Face folder block by block (the model is never held whole): the
// packed linears, every other tensor in the source dtype, config.json with a
// quantization_config, quantization_config.json (auto-round's side copy), the tokenizer
// files, quantization.json (signround's per-layer record, exact act_max for eval) and
// signround_run.json; sharded when job.max_shard_bytes > 0; under a temporary folder
// renamed when complete.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "export/export_job.h"
#include "export/packed_tensors.h"

namespace sr {

// Throws sr::Error (naming the layer, the scheme and the format) unless every layer of
// `plan` can be stored in the format. `calibrated`: the run collects act_max (false for
// plain RTN), which static NVFP4 activations need. Called before quantizing.
void check_auto_round_plan(const LayerPlan& plan, bool calibrated);
void check_auto_gptq_plan(const LayerPlan& plan, bool calibrated);

void export_auto_round(const ExportJob& job, const std::string& out_dir);
void export_auto_gptq(const ExportJob& job, const std::string& out_dir);

// What the two formats configure in the shared writer.
struct PackedFolderSpec {
  std::string format;                          // quantization.json "format"
  PackOptions pack;
  nlohmann::ordered_json quantization_config;
  std::string torch_dtype;                     // config.json torch_dtype override, or empty
};
void write_packed_folder(const ExportJob& job, const std::string& out_dir, const PackedFolderSpec& spec);

}  // namespace sr
