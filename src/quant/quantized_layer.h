// The result of quantizing one linear layer, in the compact form export packs
// (codes + scales), and the per-block state files that make runs resumable.
//
// Block state file: safetensors with, per layer `<name>`:
//   <name>.codes U8 [O, I], <name>.scales, <name>.zeros (INT), <name>.global_scale (NV),
//   <name>.act_max (static activation schemes); GGUF types instead <name>.ggml U8 [O, row bytes],
//   the layer's ggml rows as the GGUF file stores them
// and metadata "layers" (JSON: name -> scheme) and "stats" (JSON, the tuning record).
// The fake-quant weight is decode_weight(codes, scales): bit-identical to the
// qdq that tuning saw (quant/qdq.h), so nothing else needs storing.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/torch.h"
#include "quant/qdq.h"
#include "quant/formats/scheme.h"

namespace sr {

struct QuantizedLayer {
  std::string name;
  QuantScheme scheme;
  Encoded encoded;
  ActQuantState act;  // act_max for static activation schemes, else undefined

  at::Tensor dequantized() const { return decode_weight(encoded, scheme); }  // [O, I] fp32
};

void save_block_state(const std::string& path, const std::vector<QuantizedLayer>& layers,
                      const nlohmann::json& stats);
// Throws naming the file if it is not a block state written by save_block_state.
std::vector<QuantizedLayer> load_block_state(const std::string& path, nlohmann::json* stats = nullptr);
// A loaded layer's weight [out, in], after checking it against what the plan expects of it:
// the same scheme, codes and decoded weight of the planned shape, finite values. Throws
// naming `file` and the layer otherwise (a corrupt state must not reach the model).
at::Tensor decode_saved_layer(const QuantizedLayer& l, const QuantScheme& planned, int64_t out, int64_t in,
                              const std::string& file);

}  // namespace sr
