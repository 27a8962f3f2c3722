// The --layer_config file: per-layer schemes keyed by a layer name or a safe pattern
// (common/safe_regex.h). Torch-free, so the fuzz target reads it exactly as the plan does.
//
//   {"model.layers.0.mlp.down_proj": {"bits": 8}, "(q|k)_proj": {"bits": 3}}
//   or the record signround writes itself: {"layers": {...}}
#pragma once
#include <string>
#include <vector>

#include "common/safe_regex.h"
#include "quant/formats/scheme.h"

namespace sr {

struct LayerOverride {
  std::string key;
  QuantScheme scheme;
  bool exact = false;  // key names a layer exactly
  SafeRegex pattern;   // otherwise: searched in each layer name
  bool used = false;
};

// Reads `path`; a key equal to one of `layer_names` is exact, any other must be a safe pattern.
// Throws sr::Error naming the file (and the key) for anything else.
std::vector<LayerOverride> read_layer_config(const std::string& path, const std::vector<std::string>& layer_names);

// The override for layer `name`: its exact key first, else the first pattern in file order
// that matches; nullptr when none does.
LayerOverride* find_layer_override(std::vector<LayerOverride>& overrides, const std::string& name);

}  // namespace sr
