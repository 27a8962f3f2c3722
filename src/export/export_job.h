// What every export format receives: the source model, the layer plan, the
// quantized layers block by block (read from the tuning state, so the whole model
// is never held), lm_head's when quantized, how they were tuned, and the run record to store
// alongside.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.h"
#include "quant/layer_plan.h"
#include "quant/quantized_layer.h"

namespace sr {

struct GgufTarget;  // export/gguf_target.h

// How the weights were made, for the metadata exports write: GGUF general.quantized_by and
// signround.recipe; the tuning keys of auto_round / GPTQ quantization_config (only those that
// differ from auto-round's defaults, which are these fields' defaults).
struct TuningRecipe {
  std::string method = "rtn";  // "rtn", "opt_rtn", "signround_v1", "signround_v2"
  int64_t iters = 200;
  double lr = 0, minmax_lr = 0;  // 0: the automatic rule (tune/unit_quantizer.h)
  int64_t batch_size = 8, gradient_accumulate_steps = 1;
  int64_t nsamples = 128, seqlen = 2048;
  uint64_t seed = 42;
  std::string dataset;  // the calibration text's path as given; "" for data-free runs
  std::string imatrix;  // the imatrix file given (quantize --imatrix); "" when collected or none
  bool enable_minmax_tuning = true, enable_quanted_input = true;
};

struct ExportJob {
  const Model* model = nullptr;
  const LayerPlan* plan = nullptr;
  std::function<std::vector<QuantizedLayer>(int64_t block)> block_layers;
  std::vector<QuantizedLayer> head_layers;  // lm_head, if quantized
  nlohmann::json record;                    // run record (settings, stats), stored as is
  std::optional<TuningRecipe> recipe;       // none: no tuning keys, GGUF recipe "rtn"
  uint64_t max_shard_bytes = 0;             // 0: one safetensors file
  // Importance of quantizable layers the run left to the exporter, for formats that encode
  // them with it (GGUF's output.weight): {"lm_head": [D] mean x² of its input}
  // (tune/pipeline.h load_saved_head_imatrix); empty for data-free runs.
  std::map<std::string, at::Tensor> imatrix;
  // The GGUF file planned before tuning (export/gguf_target.h), for gguf:<mix> formats.
  const GgufTarget* gguf = nullptr;
  bool progress = false;  // progress lines on stderr while exporting
};

// Writes `job` in `format` ("fake", "gguf:q4_k_m", ...) to `out_dir`, under a temporary name
// renamed only when complete. Throws sr::Error naming the format if unknown or if
// a layer's scheme cannot be stored in it.
void export_model(const std::string& format, const ExportJob& job, const std::string& out_dir);

// Throws sr::Error listing the supported formats unless `format` is one of them.
// Called before quantizing, so a typo never costs a tuning run.
void check_export_format(const std::string& format);
// Whether `format` is a supported one (case-insensitive), and the supported ones, comma-separated.
bool is_export_format(const std::string& format);
std::string export_format_list();

// Throws sr::Error naming the layer and scheme when `format` cannot store a layer of
// `plan` (e.g. MXFP4 to auto_gptq). `calibrated`: the run collects act_max (not plain
// RTN). Called before quantizing, with check_export_format.
void check_export_plan(const std::string& format, const LayerPlan& plan, bool calibrated);

// The formats, one function each (export/<format>_export.cpp).
void export_fake(const ExportJob& job, const std::string& out_dir);

// "quantization.json" written beside every exported model: format, per-layer
// schemes and calibrated activation maxima (what eval needs to apply activation
// quantization).
nlohmann::json quantization_record(const std::string& format, const ExportJob& job,
                                   const std::vector<QuantizedLayer>& all_layers);

}  // namespace sr
