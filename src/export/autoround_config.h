// config.json "quantization_config" as auto-round writes it (spec §5.1, §5.3;
// auto_round/export/export_to_autoround/export.py, export_to_nvfp_mx.py,
// export_to_autogptq/export.py, export/utils.py filter_quantization_config).
//
// auto_round:
//   {"bits", "group_size", "sym", "data_type",             <- the default scheme
//    <tuning hyper-parameters that differ from auto-round's defaults>,
//    "act_bits", "act_group_size", "act_sym", "act_data_type", "act_dynamic"  <- act_bits < 16 only
//    "quant_method": "auto-round", "packing_format": ..., "block_name_to_quantize": "model.layers",
//    "extra_config": {"<layer>": {<keys that differ from the default>}, ...}}  <- when any
//   A block layer enters extra_config when its scheme differs (16-bit kept layers too:
//   {"bits": 16, "data_type": "fp", ...}); a quantized lm_head enters with all nine keys.
// auto_gptq:
//   {"bits", "group_size", "sym", "data_type": "int", <tuning overrides>, "lm_head": false,
//    "provider": "signround", "quant_method": "gptq", "desc_act": false,
//    "true_sequential": false, "damp_percent": 0.01,
//    "dynamic": {"+:<regex>": {"bits", "group_size", "sym"}, "-:<regex>": {}}}  <- when any
//   <regex> is auto-round's to_standard_regex of the layer name: ".*model\.layers\.0\.mlp\.down_proj.*".
// Tuning defaults (auto-round): iters 200, lr 1/iters (5e-3 at iters 0), minmax_lr = lr,
// batch_size 8, gradient_accumulate_steps 1, nsamples 128, seqlen 2048,
// enable_minmax_tuning and enable_quanted_input true, dataset NeelNanda/pile-10k.
#pragma once
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "export/export_job.h"
#include "quant/layer_plan.h"

namespace sr {

// The scheme of the plan's "default" layers; else its most common quantized scheme.
// Throws sr::Error when the plan quantizes nothing.
QuantScheme plan_default_scheme(const LayerPlan& plan);

// `recipe`: how the run tuned (export/export_job.h); none writes no tuning keys.
nlohmann::ordered_json autoround_quantization_config(const LayerPlan& plan, const std::string& packing_format,
                                                     const std::optional<TuningRecipe>& recipe);
nlohmann::ordered_json gptq_quantization_config(const LayerPlan& plan, const std::optional<TuningRecipe>& recipe);

// auto-round's to_standard_regex for a plain layer name: ".*" + name with '.' escaped + ".*".
std::string layer_regex(const std::string& name);

}  // namespace sr
