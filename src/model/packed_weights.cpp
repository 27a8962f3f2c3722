#include "model/packed_weights.h"

#include <algorithm>

#include "common/error.h"
#include "model/tensor_convert.h"
#include "quant/formats/int_quant.h"
#include "quant/formats/mxfp.h"
#include "quant/formats/nvfp.h"
#include "quant/formats/packing.h"

namespace sr {
namespace {

const char* family_name(PackedFamily f) {
  switch (f) {
    case PackedFamily::Int: return "INT (qweight/qzeros/scales)";
    case PackedFamily::Mx: return "MX (weight_packed or F8 weight + weight_scale)";
    case PackedFamily::Nv: return "NVFP4 (weight_packed, weight_scale, weight_global_scale)";
    default: return "unquantized";
  }
}

int64_t groups_per_row(int64_t in, int64_t g) { return g <= 0 ? 1 : (in + g - 1) / g; }

// The stored bytes of an entry as uint8 [shape] (F8_E4M3 has no torch 1.13 dtype).
at::Tensor raw_bytes(const TensorEntry& e) {
  return at::from_blob(const_cast<uint8_t*>(e.data), {int64_t(e.nbytes)}, at::kByte)
      .clone()
      .view(at::IntArrayRef(e.shape));
}

struct Expect {
  std::string suffix;
  std::vector<std::string> dtypes;
  std::vector<int64_t> shape;  // empty with numel1: any shape of one element
  bool optional = false;
  bool numel1 = false;
};

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " or ") + x;
  return s;
}

}  // namespace

PackedWeights::PackedWeights(const TensorStore& store, QuantConfig qc, const std::vector<LinearShape>& linears)
    : store_(&store), qc_(std::move(qc)) {
  for (const LinearShape& ls : linears) {
    Layer l{ls, qc_.layer(ls.name), {}};
    const std::string& m = ls.name;
    const bool has_packed = store.has(m + ".qweight") || store.has(m + ".weight_packed") ||
                            (store.has(m + ".weight_scale") && store.has(m + ".weight"));
    if (l.spec.family == PackedFamily::None) {
      SR_CHECK(!has_packed, "[model] ", store.sources(), ": ", m, " is stored quantized but ", qc_.source,
               " (quantization_config) leaves it unquantized");
      continue;
    }
    if (!has_packed && m == "lm_head" && store.has(m + ".weight")) continue;  // auto-round keeps it plain
    SR_CHECK(has_packed || !store.has(m + ".weight"), "[model] ", store.sources(), ": ", qc_.source,
             " quantizes ", m, " as ", family_name(l.spec.family), " but the folder stores a plain ", m,
             ".weight");
    for (const std::string& t : expected_tensors(l))
      if (store.has(t)) l.tensors.push_back(t);
    validate(l);
    layers_.push_back(std::move(l));
  }
}

std::vector<std::string> PackedWeights::expected_tensors(const Layer& l) const {
  const std::string& m = l.shape.name;
  switch (l.spec.family) {
    case PackedFamily::Int: return {m + ".qweight", m + ".qzeros", m + ".scales", m + ".g_idx"};
    case PackedFamily::Mx:
      return {m + (l.spec.scheme.bits == 4 ? ".weight_packed" : ".weight"), m + ".weight_scale"};
    case PackedFamily::Nv:
      return {m + ".weight_packed", m + ".weight_scale", m + ".weight_global_scale", m + ".input_global_scale"};
    default: return {};
  }
}

void PackedWeights::validate(const Layer& l) const {
  const std::string& m = l.shape.name;
  const int64_t O = l.shape.out, I = l.shape.in, b = l.spec.scheme.bits, G = l.spec.scheme.group_size;
  const int64_t C = groups_per_row(I, G);
  std::vector<Expect> ex;
  switch (l.spec.family) {
    case PackedFamily::Int:
      ex = {{".qweight", {"I32"}, {packing::gptq_words(I, int(b)), O}},
            {".qzeros", {"I32"}, {C, packing::gptq_words(O, int(b))}},
            {".scales", {"F16", "BF16", "F32"}, {C, O}},
            {".g_idx", {"I32"}, {I}, true}};
      break;
    case PackedFamily::Mx:
      ex = {b == 4 ? Expect{".weight_packed", {"U8"}, {O, (I + 1) / 2}} : Expect{".weight", {"F8_E4M3"}, {O, I}},
            {".weight_scale", {"U8"}, {O, C}}};
      break;
    default:
      ex = {{".weight_packed", {"U8"}, {O, (I + 1) / 2}},
            {".weight_scale", {"F8_E4M3"}, {O, C}},
            {".weight_global_scale", {"F32"}, {}, false, true},
            {".input_global_scale", {"F32"}, {}, true, true}};
  }
  for (const Expect& e : ex) {
    const TensorEntry* t = store_->find(m + e.suffix);
    SR_CHECK(t || e.optional, "[model] ", store_->sources(), ": ", qc_.source, " stores ", m, " as ",
             family_name(l.spec.family), " (", b, " bits, group ", G, ") but tensor '", m, e.suffix, "' is missing");
    if (!t) continue;
    SR_CHECK(std::find(e.dtypes.begin(), e.dtypes.end(), t->dtype) != e.dtypes.end(), "[model] tensor ",
             t->describe(), " should have dtype ", join(e.dtypes), " (layout from ", qc_.source, ")");
    if (e.numel1)
      SR_CHECK(t->numel() == 1, "[model] tensor ", t->describe(), " should hold one value");
    else
      SR_CHECK(t->shape == e.shape, "[model] tensor ", t->describe(), " should have shape ", at::IntArrayRef(e.shape),
               " for a [", O, ", ", I, "] layer at ", b, " bits, group ", G, " (layout from ", qc_.source, ")");
  }
  if (const TensorEntry* g = store_->find(m + ".g_idx")) {
    at::Tensor want = at::div(at::arange(I, at::kInt), G <= 0 ? I : G, "floor").to(at::kInt);
    SR_CHECK(at::equal(entry_to_tensor(*g), want), "[model] tensor ", g->describe(),
             " is not k / group_size: act-order (desc_act) checkpoints are not supported");
  }
}

bool PackedWeights::packed(const std::string& weight_name) const {
  for (const Layer& l : layers_)
    if (weight_name == l.shape.name + ".weight") return true;
  return false;
}

const PackedWeights::Layer& PackedWeights::layer_of(const std::string& weight_name) const {
  for (const Layer& l : layers_)
    if (weight_name == l.shape.name + ".weight") return l;
  fail("[model] ", weight_name, " is not a packed weight");
}

std::vector<std::string> PackedWeights::stored_tensors() const {
  std::vector<std::string> out;
  for (const Layer& l : layers_) out.insert(out.end(), l.tensors.begin(), l.tensors.end());
  return out;
}

at::Tensor PackedWeights::dequantize(const std::string& weight_name) const {
  const Layer& l = layer_of(weight_name);
  const std::string& m = l.shape.name;
  const int64_t O = l.shape.out, I = l.shape.in, G = l.spec.scheme.group_size;
  const int b = l.spec.scheme.bits;
  auto get = [&](const std::string& suffix) -> const TensorEntry& { return store_->get(m + suffix); };
  Encoded e;
  at::Tensor w;
  std::string scale_tensor = m + ".weight_scale";
  if (l.spec.family == PackedFamily::Int) {
    const std::string what = m + ".qweight";
    e.codes = packing::unpack_gptq(entry_to_tensor(get(".qweight")), b, I, 0, what.c_str()).t().contiguous();
    e.zeros = packing::unpack_gptq(entry_to_tensor(get(".qzeros")), b, O, 1, (m + ".qzeros").c_str())
                  .t().to(at::kInt) + qc_.zero_offset;
    e.scales = entry_to_tensor(get(".scales")).t().contiguous();
    w = int_quant::decode(e, {b, l.spec.scheme.sym, G, true});
    scale_tensor = m + ".scales";
  } else if (l.spec.family == PackedFamily::Mx) {
    e.codes = b == 4 ? packing::unpack_fp4_pairs(raw_bytes(get(".weight_packed")), I, (m + ".weight_packed").c_str())
                     : raw_bytes(get(".weight"));
    e.scales = raw_bytes(get(".weight_scale"));
    w = mxfp::decode(e, {b == 4 ? mxfp::Element::E2M1 : mxfp::Element::E4M3, mxfp::ScaleRule::Floor, G});
  } else {
    e.codes = packing::unpack_fp4_pairs(raw_bytes(get(".weight_packed")), I, (m + ".weight_packed").c_str());
    e.scales = raw_bytes(get(".weight_scale"));
    e.global_scale = entry_to_tensor(get(".weight_global_scale")).reshape({1});
    SR_CHECK(std::isfinite(e.global_scale.item<float>()) && e.global_scale.item<float>() >= 0, "[model] tensor ",
             get(".weight_global_scale").describe(), " must be finite and >= 0, got ", e.global_scale.item<float>());
    w = nvfp::decode(e, {16});
  }
  for (const std::string& t : l.tensors) store_->release(store_->get(t));
  SR_CHECK(!at::isnan(w).any().item<bool>(), "[model] ", m, ": dequantized weight holds NaN (a NaN code in ",
           scale_tensor, " or in the packed elements)");
  return w;
}

}  // namespace sr
