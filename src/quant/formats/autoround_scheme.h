// A QuantScheme in the key space auto-round writes into a model's quantization_config
// (top level and each extra_config entry; spec §5.1, auto_round/schemes.py
// QuantizationScheme fields):
//   {"bits": 4, "group_size": 128, "sym": true, "data_type": "int",
//    "act_bits": 16, "act_group_size": 128, "act_sym": true, "act_data_type": "fp",
//    "act_dynamic": true}
// data_type names: int, mx_fp, mx_fp_rceil, nv_fp, fp (FP8 at 8 bits, unquantized at 16).
// NVFP4's static-global-scale activations are act_data_type "nv_fp4_with_static_gs" with
// act_dynamic true, exactly as auto-round's NVFP4 preset writes them; reading maps that name
// back to a static NV activation (act_dynamic false), which is what QuantScheme calls it.
#pragma once
#include <nlohmann/json.hpp>

#include "quant/formats/scheme.h"

namespace sr {

// All nine keys above, values in auto-round's names. Callers drop what they do not need.
nlohmann::ordered_json autoround_scheme_json(const QuantScheme& s);

// Reads the keys above from an object that may hold others (they are ignored) and nulls
// (treated as absent); absent keys take auto-round's QuantizationScheme defaults (W4 g128
// sym int, 16-bit activations); bits >= 16 means unquantized whatever data_type says.
// Throws sr::Error naming `where` (a file and layer) on an invalid or inconsistent value.
QuantScheme scheme_from_autoround_json(const nlohmann::json& j, const std::string& where);

}  // namespace sr
