#include "export/packed_tensors.h"

#include "common/error.h"
#include "quant/formats/nvfp.h"
#include "quant/formats/packing.h"

namespace sr {
namespace {

std::vector<StoredTensor> pack_int(const QuantizedLayer& l, const PackOptions& o) {
  const Encoded& e = l.encoded;
  const int b = l.scheme.bits;
  const std::string& m = l.name;
  SR_CHECK(at::isfinite(e.scales.to(at::kFloat)).all().item<bool>(), "[export] ", m, ": non-finite INT scale");
  at::Tensor zeros = e.zeros.to(at::kInt) - o.zero_offset;
  SR_CHECK(zeros.min().item<int>() >= 0, "[export] ", m, ": zero point ", zeros.min().item<int>() + o.zero_offset,
           " cannot be stored with the GPTQ 'zero - ", o.zero_offset, "' convention (use format auto_round)");
  std::vector<StoredTensor> out = {
      {m + ".qweight", "I32", packing::pack_gptq(e.codes.t(), b, 0, (m + ".qweight").c_str())},
      {m + ".qzeros", "I32", packing::pack_gptq(zeros.t(), b, 1, (m + ".qzeros").c_str())},
      {m + ".scales", "F16", e.scales.to(at::kHalf).t().contiguous()},
  };
  if (o.g_idx) {
    const int64_t I = e.codes.size(1), G = l.scheme.group_size;
    out.push_back({m + ".g_idx", "I32", at::div(at::arange(I, at::kInt), G <= 0 ? I : G, "floor").to(at::kInt)});
  }
  return out;
}

std::vector<StoredTensor> pack_mx(const QuantizedLayer& l) {
  const Encoded& e = l.encoded;
  const std::string& m = l.name;
  SR_CHECK(!e.scales.eq(0xff).any().item<bool>(), "[export] ", m, ": E8M0 scale holds the NaN code 0xff");
  if (l.scheme.bits == 8)
    return {{m + ".weight", "F8_E4M3", e.codes.contiguous()}, {m + ".weight_scale", "U8", e.scales.contiguous()}};
  return {{m + ".weight_packed", "U8", packing::pack_fp4_pairs(e.codes, (m + ".weight_packed").c_str())},
          {m + ".weight_scale", "U8", e.scales.contiguous()}};
}

std::vector<StoredTensor> pack_nv(const QuantizedLayer& l) {
  const Encoded& e = l.encoded;
  const std::string& m = l.name;
  const at::Tensor nan_code = at::bitwise_and(e.scales, 0x7f).eq(0x7f);
  SR_CHECK(!nan_code.any().item<bool>(), "[export] ", m, ": E4M3 block scale holds a NaN code");
  SR_CHECK(e.global_scale.defined() && at::isfinite(e.global_scale).all().item<bool>(), "[export] ", m,
           ": missing or non-finite NVFP4 global scale");
  std::vector<StoredTensor> out = {
      {m + ".weight_packed", "U8", packing::pack_fp4_pairs(e.codes, (m + ".weight_packed").c_str())},
      {m + ".weight_scale", "F8_E4M3", e.scales.contiguous()},
      {m + ".weight_global_scale", "F32", e.global_scale.to(at::kFloat).reshape({1}).contiguous()},
  };
  const QuantScheme& s = l.scheme;
  if (s.act_quantized() && s.act_data_type == DataType::NvFp && !s.act_dynamic) {
    SR_CHECK(l.act.act_max.defined(), "[export] ", m, ": static NVFP4 activations need a calibrated act_max "
             "(quantize with calibration data, not plain RTN)");
    out.push_back({m + ".input_global_scale", "F32", nvfp::global_scale(l.act.act_max).contiguous()});
  }
  return out;
}

}  // namespace

std::vector<StoredTensor> pack_layer(const QuantizedLayer& l, const PackOptions& o) {
  SR_CHECK(l.scheme.quantized() && l.encoded.codes.defined(), "[export] ", l.name, " is not quantized");
  switch (l.scheme.data_type) {
    case DataType::Int:
      SR_CHECK(!l.scheme.act_quantized(), "[export] ", l.name, ": INT with quantized activations cannot be packed");
      return pack_int(l, o);
    case DataType::MxFp:
    case DataType::MxFpRceil: return pack_mx(l);
    case DataType::NvFp: return pack_nv(l);
    default: fail("[export] ", l.name, ": scheme ", l.scheme.name(), " has no packed safetensors layout here");
  }
}

}  // namespace sr
