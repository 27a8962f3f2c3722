// Dispatch from a QuantScheme to the format families in quant/formats, through the data
// type's row (quant/data_types.h).
#include "quant/qdq.h"

#include "common/error.h"
#include "quant/data_types.h"

namespace sr {
namespace {

void require_quantized(const QuantScheme& s, const char* fn) {
  SR_CHECK(s.quantized(), "[", fn, "] scheme ", s.name(), " is not quantized");
}

at::Tensor param(at::Tensor x) { return x.set_requires_grad(true); }

// A row's entry point, or an error naming the operation and the type that lacks it.
template <class F>
F entry(F f, DataType t, const char* fn) {
  SR_CHECK(f, "[", fn, "] data_type ", to_string(t), " has no such operation");
  return f;
}

// The global scale of an RTN layer: the caller's, else this layer's (types that have one).
at::Tensor layer_global_scale(const at::Tensor& w, const QuantScheme& s, const at::Tensor& given) {
  const auto own = data_type_qdq(s.data_type).global_scale;
  if (!own) return at::Tensor();
  return given.defined() ? given : own(w);
}

}  // namespace

int_quant::Format int_format(const QuantScheme& s) {
  SR_CHECK(s.data_type == DataType::Int, "[int_format] scheme ", s.name(), " is not int");
  return {s.bits, s.sym, s.group_size, true};
}
mxfp::Format mx_format(const QuantScheme& s) {
  const bool mx = s.data_type == DataType::MxFp || s.data_type == DataType::MxFpRceil;
  SR_CHECK(mx && (s.bits == 4 || s.bits == 8), "[mx_format] expected mx_fp 4/8 bits, got ", to_string(s.data_type),
           " ", s.bits);
  return {s.bits == 4 ? mxfp::Element::E2M1 : mxfp::Element::E4M3,
          s.data_type == DataType::MxFpRceil ? mxfp::ScaleRule::Rceil : mxfp::ScaleRule::Floor, s.group_size};
}
nvfp::Format nv_format(const QuantScheme& s) {
  SR_CHECK(s.data_type == DataType::NvFp, "[nv_format] scheme ", s.name(), " is not nv_fp");
  return {s.group_size};
}
fp8::Format fp8_format(const QuantScheme& s) {
  SR_CHECK(s.data_type == DataType::Fp8, "[fp8_format] scheme ", s.name(), " is not fp8");
  return {s.group_size};
}

bool has_init_scale_search(const QuantScheme& s) {
  return s.quantized() && s.sym && data_type_qdq(s.data_type).search_init_scale != nullptr;
}

bool uses_v2_wrapper(const QuantScheme& s) { return has_init_scale_search(s) || s.is_gguf(); }

namespace {

RtnResult gguf_rtn(const at::Tensor& w, const QuantScheme& s, const at::Tensor& imatrix) {
  RtnResult r;
  r.params.ggml = gguf_qdq::freeze(w, s.ggml_type, imatrix, /*searched_codes=*/true);
  r.encoded.ggml = gguf_qdq::encode(w, *r.params.ggml);
  r.w_hat = gguf_qdq::decode(r.encoded.ggml, s.ggml_type, w.size(1));
  return r;
}

}  // namespace

WeightQuantParams make_weight_params(const at::Tensor& w, const QuantScheme& s, TuneMode mode,
                                     const at::Tensor& imatrix) {
  require_quantized(s, "make_weight_params");
  const auto g = group_layout(w.sizes(), s.group_size);
  const auto opts = at::TensorOptions().dtype(at::kFloat).device(w.device());
  WeightQuantParams p;
  p.t.v = param(at::zeros({g.n_groups, g.length}, opts));
  if (s.is_gguf()) {
    // V1 freezes with the ref encoder (§3.6), except where llama.cpp has none: the very-low-bit
    // i-quants are only ever searched with an importance matrix.
    const bool weighted = mode == TuneMode::V2 || ggml_type_traits(s.ggml_type).requires_importance;
    p.ggml = gguf_qdq::freeze(w, s.ggml_type, weighted ? imatrix : at::Tensor(), /*searched_codes=*/false);
    return p;
  }
  p.t.beta = param(at::ones({g.n_groups}, opts));
  const DataTypeQdq& dt = data_type_qdq(s.data_type);
  if (dt.global_scale) p.global_scale = dt.global_scale(w);
  if (mode == TuneMode::V2 && uses_v2_wrapper(s)) {
    p.t.init_scale = search_init_scale(w, s, imatrix, /*handle_zero=*/false);
    p.range = {0.0f, 2.0f};
  } else if (data_type_traits(s.data_type).v1_alpha) {
    p.t.alpha = param(at::ones({g.n_groups}, opts));
  }
  return p;
}

void clamp_params_(WeightQuantParams& p) {
  at::NoGradGuard no_grad;
  if (p.t.alpha.defined()) p.t.alpha.clamp_(p.range.lo, p.range.hi);
  if (p.t.beta.defined()) p.t.beta.clamp_(p.range.lo, p.range.hi);
}

QdqResult qdq_weight(const at::Tensor& w, const QuantScheme& s, const WeightQuantParams& p) {
  return data_type_qdq(s.data_type).qdq(w, s, p);
}

Encoded encode_weight(const at::Tensor& w, const QuantScheme& s, const WeightQuantParams& p) {
  require_quantized(s, "encode_weight");
  return entry(data_type_qdq(s.data_type).encode, s.data_type, "encode_weight")(w, s, p);
}

at::Tensor decode_weight(const Encoded& e, const QuantScheme& s) {
  require_quantized(s, "decode_weight");
  return entry(data_type_qdq(s.data_type).decode, s.data_type, "decode_weight")(e, s);
}

at::Tensor qdq_act(const at::Tensor& x, const QuantScheme& s, const ActQuantState& st) {
  if (!s.act_quantized()) return x;
  const auto qdq = data_type_qdq(s.act_data_type).qdq_act;
  SR_CHECK(qdq, "[qdq_act] activation data_type ", to_string(s.act_data_type), " at ", s.act_bits,
           " bits is not a quantized type");
  return qdq(x, s, st).to(x.scalar_type());
}

at::Tensor imatrix_handle_zero(const at::Tensor& imatrix_g, const at::Tensor& wg, int bits) {
  SR_CHECK(imatrix_g.sizes() == wg.sizes() && wg.dim() == 2, "[imatrix_handle_zero] expected two "
           "[N, L] tensors, got ", imatrix_g.sizes(), " and ", wg.sizes());
  if (imatrix_g.min().item<float>() != 0.0f) return imatrix_g;
  at::NoGradGuard no_grad;
  const int64_t L = wg.size(1);
  auto zero = imatrix_g == 0;
  auto count = zero.sum(1, /*keepdim=*/true);
  auto w = wg.to(at::kFloat);
  auto fallback = bits <= 3 ? w.abs() : w.abs() + (w.square().sum(1, true) / 32.0).sqrt();
  auto mean = imatrix_g.sum(1, true) / (L - count).to(at::kFloat);
  auto out = at::where(count > L / 2, fallback, imatrix_g);
  return at::where((count > 0) & (count <= L / 2) & zero, mean.expand_as(imatrix_g), out);
}

at::Tensor search_init_scale(const at::Tensor& w, const QuantScheme& s, const at::Tensor& imatrix,
                             bool handle_zero) {
  SR_CHECK(has_init_scale_search(s), "[search_init_scale] no initial-scale search for scheme ",
           s.name(), " (only sym int, mx_fp and nv_fp)");
  at::NoGradGuard no_grad;
  const auto g = group_layout(w.sizes(), s.group_size);
  auto wg = to_groups(w.detach().to(at::kFloat), g, 0.0).contiguous();
  auto q = imatrix_to_groups(imatrix, g).to(wg.device()).contiguous();
  if (handle_zero && imatrix.defined()) q = imatrix_handle_zero(q, wg, s.bits);
  return data_type_qdq(s.data_type).search_init_scale(wg, s, q);
}

RtnResult rtn(const at::Tensor& w, const QuantScheme& s, const at::Tensor& global_scale) {
  require_quantized(s, "rtn");
  if (s.is_gguf()) return gguf_rtn(w, s, at::Tensor());
  RtnResult r;
  r.params.global_scale = layer_global_scale(w, s, global_scale);
  at::NoGradGuard no_grad;
  r.w_hat = qdq_weight(w, s, r.params).w_hat;
  r.encoded = encode_weight(w, s, r.params);
  return r;
}

RtnResult opt_rtn(const at::Tensor& w, const QuantScheme& s, const at::Tensor& imatrix,
                  const at::Tensor& global_scale) {
  if (s.is_gguf()) return gguf_rtn(w, s, imatrix);
  if (!has_init_scale_search(s)) return rtn(w, s, global_scale);
  RtnResult r;
  r.params.global_scale = layer_global_scale(w, s, global_scale);
  r.params.t.init_scale = search_init_scale(w, s, imatrix, /*handle_zero=*/true);
  at::NoGradGuard no_grad;
  r.w_hat = qdq_weight(w, s, r.params).w_hat;
  r.encoded = encode_weight(w, s, r.params);
  return r;
}

}  // namespace sr
