// The "quantization_config" object of a quantized Hugging Face config.json, as written by
// auto-round (quant_method "auto-round") and by GPTQ tools (quant_method "gptq"), resolved
// per linear layer. Reading only; docs/formats-safetensors.md lists the keys.
//
// Per-layer resolution (what auto-round and vLLM's INC loader do):
//   1. start from the top-level scheme keys (bits, group_size, sym, data_type, act_*);
//   2. an extra_config (auto-round) / dynamic (GPTQ, "+:re" quantize, "-:re" keep 16-bit)
//      entry whose key equals the layer name is merged on top; else the first entry whose
//      key matches as a pattern: keys holding regex syntax (".*", "^", "$", "|", "(", ")",
//      "[", "]", "?", "+") are searched as ECMAScript regexes, other keys as substrings
//      (auto-round to_standard_regex wraps plain keys in ".*<escaped>.*");
//   3. without such an entry, a layer outside block_name_to_quantize (default
//      "model.layers"), or lm_head (unless GPTQ's "lm_head": true), or a GPTQ block layer
//      missing from modules_in_block_to_quantize, is unquantized (bits 16).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "quant/formats/scheme.h"

namespace sr {

// How a linear's stored tensors are to be read.
enum class PackedFamily : int {
  None = 0,  // plain <name>.weight
  Int = 1,   // qweight / qzeros / scales (GPTQ words)
  Mx = 2,    // MXFP4 weight_packed or MXFP8 weight (F8_E4M3) + weight_scale (E8M0)
  Nv = 3,    // NVFP4 weight_packed + weight_scale (E4M3) + weight_global_scale
};

struct LayerQuantSpec {
  PackedFamily family = PackedFamily::None;  // None: the layer is stored plain
  QuantScheme scheme;  // the layer's scheme (scheme.bits >= 16: not quantized)
};

struct QuantConfig {
  std::string source;          // config.json path, for messages
  std::string quant_method;    // "auto-round" or "gptq"
  std::string packing_format;  // "auto_round:auto_gptq", "auto_round", "auto_round:llm_compressor", "gptq"
  int zero_offset = 0;         // INT: true zero point = stored zero + zero_offset (GPTQ: 1)
  nlohmann::json defaults = nlohmann::json::object();  // top-level scheme keys
  std::vector<std::pair<std::string, nlohmann::json>> extra;  // key -> scheme keys, file order
  std::vector<std::string> block_names;        // prefixes of the quantized blocks
  std::vector<std::string> modules_in_block;   // GPTQ: quantized module suffixes; empty = all
  bool lm_head_quantized = false;              // GPTQ "lm_head": true

  // The scheme keys of module `name` ("model.layers.3.mlp.up_proj", "lm_head") per the
  // rules above; bits >= 16 means unquantized.
  nlohmann::json layer_fields(const std::string& name) const;
  // The same as a QuantScheme (quant/formats/autoround_scheme.h), with the packed layout it
  // is stored in. Throws sr::Error naming source and layer for an invalid scheme or one this
  // reader cannot decode (fp8, per-tensor INT groups).
  LayerQuantSpec layer(const std::string& name) const;
};

// nullopt when `config` has no "quantization_config". Throws sr::Error naming `path` when
// it is not an object, names an unsupported quant_method / packing_format, or has keys of
// the wrong type.
std::optional<QuantConfig> parse_quant_config(const nlohmann::json& config, const std::string& path);

}  // namespace sr
