// The quantized linear weights of an auto_round / GPTQ safetensors folder, dequantized to
// fp32 on demand (one layer at a time, from the memory-mapped shards). Tensor layouts
// (spec §5.1-§5.3, docs/formats-safetensors.md), per layer <m> of [out O, in I]:
//   INT (b bits, group G, C = ceil(I/G), C = 1 for G = -1):
//     <m>.qweight I32 [ceil(I·b/32), O]   codes along I in GPTQ words (quant/formats/packing.h)
//     <m>.qzeros  I32 [C, ceil(O·b/32)]   stored zeros along O; zero = stored + zero_offset
//     <m>.scales  F16 [C, O]              (may be negative: full-range sym, spec §1.2)
//     <m>.g_idx   I32 [I] optional        must be k / G (no act-order permutation)
//     w[o, k] = scales[k/G, o] · (code[k, o] − zero[k/G, o])         (int_quant::decode)
//   MXFP4: <m>.weight_packed U8 [O, I/2] (two E2M1 codes, low nibble = even k),
//   MXFP8: <m>.weight F8_E4M3 [O, I];  both: <m>.weight_scale U8 [O, I/G] (E8M0)
//     w = element · 2^(byte − 127)                                     (mxfp::decode)
//   NVFP4: <m>.weight_packed U8 [O, I/2], <m>.weight_scale F8_E4M3 [O, I/16],
//     <m>.weight_global_scale F32 [1], optional <m>.input_global_scale F32 [1]
//     w = fp4 · recip(recip(sb · recip(gs)))                             (nvfp::decode)
// The result equals, bit for bit, the fake-quant weight the quantizer computed (decode of
// the same codes). lm_head may be stored plain even when the config quantizes it (auto-round
// does not pack it for llm_compressor / GPTQ exports); other layers must match the config.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/torch.h"
#include "io/tensor_store.h"
#include "model/quant_config.h"

namespace sr {

struct LinearShape {
  std::string name;  // module name, e.g. "model.layers.0.mlp.up_proj"
  int64_t out = 0, in = 0;
};

class PackedWeights {
 public:
  // Resolves every linear of `linears` against `qc` and checks that `store` holds exactly
  // the tensors its layout needs, with the right dtypes and shapes (and g_idx values).
  // Throws sr::Error naming the file and tensor on anything missing or inconsistent.
  // `store` must outlive this object.
  PackedWeights(const TensorStore& store, QuantConfig qc, const std::vector<LinearShape>& linears);

  const QuantConfig& config() const { return qc_; }
  // Whether the HF tensor `weight_name` ("<m>.weight") is stored packed.
  bool packed(const std::string& weight_name) const;
  // Every stored tensor name the packed layers own (for the unexpected-tensor check).
  std::vector<std::string> stored_tensors() const;
  // fp32 [O, I]. Throws naming the tensor when its values are invalid (codes of a packed
  // scale byte that is NaN, zero points past 255, ...). REQUIRES: packed(weight_name).
  at::Tensor dequantize(const std::string& weight_name) const;

 private:
  struct Layer {
    LinearShape shape;
    LayerQuantSpec spec;
    std::vector<std::string> tensors;
  };
  const Layer& layer_of(const std::string& weight_name) const;
  std::vector<std::string> expected_tensors(const Layer& l) const;
  void validate(const Layer& l) const;

  const TensorStore* store_;
  QuantConfig qc_;
  std::vector<Layer> layers_;
};

}  // namespace sr
