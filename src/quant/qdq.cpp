// Dispatch from a QuantScheme to the format families in quant/formats.
#include "quant/qdq.h"

#include "common/error.h"

namespace sr {
namespace {

bool is_mx(DataType t) { return t == DataType::MxFp || t == DataType::MxFpRceil; }

mxfp::Format mx_format_of(int bits, int64_t g, DataType t) {
  SR_CHECK(is_mx(t) && (bits == 4 || bits == 8), "[mx_format] expected mx_fp 4/8 bits, got ",
           to_string(t), " ", bits);
  mxfp::Format f;
  f.element = bits == 4 ? mxfp::Element::E2M1 : mxfp::Element::E4M3;
  f.rule = t == DataType::MxFpRceil ? mxfp::ScaleRule::Rceil : mxfp::ScaleRule::Floor;
  f.group_size = g;
  return f;
}

void require_quantized(const QuantScheme& s, const char* fn) {
  SR_CHECK(s.quantized(), "[", fn, "] scheme ", s.name(), " is not quantized");
}

at::Tensor param(at::Tensor x) { return x.set_requires_grad(true); }

}  // namespace

int_quant::Format int_format(const QuantScheme& s) {
  SR_CHECK(s.data_type == DataType::Int, "[int_format] scheme ", s.name(), " is not int");
  return {s.bits, s.sym, s.group_size, true};
}
mxfp::Format mx_format(const QuantScheme& s) { return mx_format_of(s.bits, s.group_size, s.data_type); }
nvfp::Format nv_format(const QuantScheme& s) {
  SR_CHECK(s.data_type == DataType::NvFp, "[nv_format] scheme ", s.name(), " is not nv_fp");
  return {s.group_size};
}
fp8::Format fp8_format(const QuantScheme& s) {
  SR_CHECK(s.data_type == DataType::Fp8, "[fp8_format] scheme ", s.name(), " is not fp8");
  return {s.group_size};
}

bool has_init_scale_search(const QuantScheme& s) {
  return s.quantized() && s.sym &&
         (s.data_type == DataType::Int || is_mx(s.data_type) || s.data_type == DataType::NvFp);
}

bool uses_v2_wrapper(const QuantScheme& s) { return has_init_scale_search(s) || s.is_gguf(); }

namespace {

// The frozen parameters of a GGUF weight: p's, or llama.cpp's ref search (RTN) when p has none.
std::shared_ptr<const gguf_qdq::Frozen> frozen_of(const at::Tensor& w, const QuantScheme& s,
                                                  const WeightQuantParams& p) {
  if (p.ggml) {
    SR_CHECK(p.ggml->type == s.ggml_type, "[qdq] parameters frozen for ", ggml_type_name(p.ggml->type),
             " used with scheme ", s.name());
    return p.ggml;
  }
  return gguf_qdq::freeze(w, s.ggml_type, at::Tensor(), /*searched_codes=*/true);
}

WeightQuantParams gguf_params(const at::Tensor& w, const QuantScheme& s, TuneMode mode, const at::Tensor& imatrix) {
  const auto g = group_layout(w.sizes(), s.group_size);
  WeightQuantParams p;
  p.t.v = param(at::zeros({g.n_groups, g.length}, at::TensorOptions().dtype(at::kFloat).device(w.device())));
  p.ggml = gguf_qdq::freeze(w, s.ggml_type, mode == TuneMode::V2 ? imatrix : at::Tensor(), /*searched_codes=*/false);
  return p;
}

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
  if (s.is_gguf()) return gguf_params(w, s, mode, imatrix);
  const auto g = group_layout(w.sizes(), s.group_size);
  const auto opts = at::TensorOptions().dtype(at::kFloat).device(w.device());
  WeightQuantParams p;
  p.t.v = param(at::zeros({g.n_groups, g.length}, opts));
  p.t.beta = param(at::ones({g.n_groups}, opts));
  if (s.data_type == DataType::NvFp) p.global_scale = nvfp::global_scale(w);
  if (mode == TuneMode::V2 && uses_v2_wrapper(s)) {
    p.t.init_scale = search_init_scale(w, s, imatrix, /*handle_zero=*/false);
    p.range = {0.0f, 2.0f};
  } else if (s.data_type == DataType::Int) {
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
  switch (s.data_type) {
    case DataType::Int: return int_quant::qdq(w, int_format(s), p.t);
    case DataType::MxFp:
    case DataType::MxFpRceil: return mxfp::qdq(w, mx_format(s), p.t);
    case DataType::NvFp: return nvfp::qdq(w, nv_format(s), p.t, p.global_scale);
    case DataType::Fp8: return fp8::qdq(w, fp8_format(s), p.t);
    case DataType::Gguf: return {gguf_qdq::qdq(w, *frozen_of(w, s, p), p.t.v), at::Tensor(), at::Tensor()};
    default: return {w.to(at::kFloat), at::Tensor(), at::Tensor()};
  }
}

Encoded encode_weight(const at::Tensor& w, const QuantScheme& s, const WeightQuantParams& p) {
  require_quantized(s, "encode_weight");
  switch (s.data_type) {
    case DataType::Int: return int_quant::encode(w, int_format(s), p.t);
    case DataType::MxFp:
    case DataType::MxFpRceil: return mxfp::encode(w, mx_format(s), p.t);
    case DataType::NvFp: return nvfp::encode(w, nv_format(s), p.t, p.global_scale);
    case DataType::Gguf: {
      Encoded e;
      e.ggml = gguf_qdq::encode(w, *frozen_of(w, s, p), p.t.v);
      return e;
    }
    default: return fp8::encode(w, fp8_format(s), p.t);
  }
}

at::Tensor decode_weight(const Encoded& e, const QuantScheme& s) {
  require_quantized(s, "decode_weight");
  switch (s.data_type) {
    case DataType::Int: return int_quant::decode(e, int_format(s));
    case DataType::MxFp:
    case DataType::MxFpRceil: return mxfp::decode(e, mx_format(s));
    case DataType::NvFp: return nvfp::decode(e, nv_format(s));
    case DataType::Gguf: {
      SR_CHECK(e.ggml.defined() && e.ggml.dim() == 2, "[decode_weight] ", s.name(), " needs the ggml rows");
      return gguf_qdq::decode(e.ggml, s.ggml_type, gguf_qdq::cols_of(s.ggml_type, e.ggml.size(1)));
    }
    default: return fp8::decode(e, fp8_format(s));
  }
}

at::Tensor qdq_act(const at::Tensor& x, const QuantScheme& s, const ActQuantState& st) {
  if (!s.act_quantized()) return x;
  at::Tensor y;
  switch (s.act_data_type) {
    case DataType::Int:
      y = int_quant::qdq(x, {s.act_bits, s.act_sym, s.act_group_size, true}).w_hat;
      break;
    case DataType::MxFp:
    case DataType::MxFpRceil:
      y = mxfp::qdq(x, mx_format_of(s.act_bits, s.act_group_size, s.act_data_type)).w_hat;
      break;
    case DataType::NvFp:
      y = nvfp::qdq_act(x, {s.act_group_size}, s.act_dynamic ? at::Tensor() : st.act_max);
      break;
    case DataType::Fp8: {
      Tunables t;
      at::Tensor tmax;
      if (!s.act_dynamic) {
        SR_CHECK(st.act_max.defined(), "[qdq_act] static fp8 activations need a calibrated act_max");
        tmax = st.act_max;
        const auto g = group_layout(x.sizes(), s.act_group_size);
        if (st.act_max_scale.defined()) t.beta = st.act_max_scale.to(at::kFloat).reshape({1}).expand({g.n_groups});
      }
      y = fp8::qdq(x, {s.act_group_size}, t, tmax).w_hat;
      break;
    }
    default: sr::fail("[qdq_act] activation data_type ", to_string(s.act_data_type), " at ",
                      s.act_bits, " bits is not a quantized type");
  }
  return y.to(x.scalar_type());
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
  if (s.data_type == DataType::Int) return int_quant::search_init_scale(wg, int_format(s), q);
  if (s.data_type == DataType::NvFp) return nvfp::search_init_scale(wg, nv_format(s), q);
  return mxfp::search_init_scale(wg, mx_format(s), q);
}

RtnResult rtn(const at::Tensor& w, const QuantScheme& s, const at::Tensor& global_scale) {
  require_quantized(s, "rtn");
  if (s.is_gguf()) return gguf_rtn(w, s, at::Tensor());
  RtnResult r;
  if (s.data_type == DataType::NvFp)
    r.params.global_scale = global_scale.defined() ? global_scale : nvfp::global_scale(w);
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
  if (s.data_type == DataType::NvFp)
    r.params.global_scale = global_scale.defined() ? global_scale : nvfp::global_scale(w);
  r.params.t.init_scale = search_init_scale(w, s, imatrix, /*handle_zero=*/true);
  at::NoGradGuard no_grad;
  r.w_hat = qdq_weight(w, s, r.params).w_hat;
  r.encoded = encode_weight(w, s, r.params);
  return r;
}

}  // namespace sr
