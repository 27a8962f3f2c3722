// The stored tensors of one quantized linear in the auto_round / GPTQ safetensors layouts
// (spec §5.1-§5.3; the reader is model/packed_weights.h, which documents the same layouts).
// Per layer <m> with weight [O, I]:
//   INT:   <m>.qweight I32 [ceil(I·b/32), O], <m>.qzeros I32 [C, ceil(O·b/32)] holding
//          zero − zero_offset, <m>.scales F16 [C, O] (signed for full-range sym),
//          <m>.g_idx I32 [I] = k / G when asked (GPTQ)
//   MXFP4: <m>.weight_packed U8 [O, I/2], <m>.weight_scale U8 [O, I/32] (E8M0)
//   MXFP8: <m>.weight F8_E4M3 [O, I],     <m>.weight_scale U8 [O, I/32]
//   NVFP4: <m>.weight_packed U8 [O, I/2], <m>.weight_scale F8_E4M3 [O, I/16],
//          <m>.weight_global_scale F32 [1], <m>.input_global_scale F32 [1] = 2688·recip(act_max)
//          for static NV activations
// Codes and scales are the layer's Encoded values unchanged, so a reader's decode equals the
// fake-quant weight bit for bit.
#pragma once
#include <string>
#include <vector>

#include "common/torch.h"
#include "quant/quantized_layer.h"

namespace sr {

struct StoredTensor {
  std::string name;   // "<m>.qweight", ...
  std::string dtype;  // safetensors dtype ("I32", "F16", "U8", "F8_E4M3", "F32")
  at::Tensor data;    // contiguous CPU tensor whose shape is the stored shape and whose
                      // bytes are written as they are (F8_E4M3 is held as uint8)
};

struct PackOptions {
  int zero_offset = 0;  // INT: stored zero = zero point − zero_offset (GPTQ convention: 1)
  bool g_idx = false;   // INT: also write <m>.g_idx
};

// REQUIRES: l.scheme quantized, INT weight-only / MX / NV, l.encoded as encode_weight makes it.
// Throws sr::Error naming the layer when a value cannot be stored: a zero point below
// zero_offset, a non-finite scale, an NVFP4 static activation without act_max, an
// unsupported scheme.
std::vector<StoredTensor> pack_layer(const QuantizedLayer& l, const PackOptions& o);

}  // namespace sr
