// FP8 E4M3 qdq: composed reference (quant_fp8_sym transcribed), fused CPU kernel,
// encode/decode.
#include "quant/formats/fp8.h"

#include "common/error.h"
#include "quant/formats/fp_codecs.h"
#include "quant/formats/fused.h"

namespace sr::fp8 {
namespace {

constexpr float kMax = codec::kE4M3Max;
const float kScaleFloor = float(1.0 / (448.0 * 512.0));  // vLLM's min scaling factor

using Prepared = GroupedWeight;

Prepared prepare(const at::Tensor& w, const Format& f, const Tunables& t, const char* fn) {
  check_group_size(f.group_size, fn);
  return group_weight(w, f.group_size, t, fn);
}

struct Parts {
  at::Tensor w_hat, s, t;  // [N, L], [N], [N, L]
};

Parts reference_parts(const at::Tensor& wg, const Tunables& t, const at::Tensor& tensor_max) {
  at::Tensor amax;
  if (tensor_max.defined()) {
    auto tm = tensor_max.to(at::kFloat).to(wg.device());
    SR_CHECK(tm.numel() == 1 || tm.numel() == wg.size(0), "[fp8::qdq] tensor_max must have 1 or ",
             wg.size(0), " elements, got ", tm.numel());
    amax = tm.reshape({-1}).expand({wg.size(0)});
  } else {
    amax = group_amax(wg);
  }
  if (t.beta.defined()) amax = amax * t.beta;
  auto s = at::clamp_min(amax / kMax, kScaleFloor);
  auto x = wg / s.unsqueeze(1);
  if (t.v.defined()) x = x + t.v;
  auto xc = at::clamp(x, -kMax, kMax);
  auto el = ste(codec::e4m3_round(xc.detach()), xc);
  return {el * s.unsqueeze(1), s, el};
}

struct Kernel {
  bool has_tmax = false;  // static amax (calibrated act_max), one value for every group
  float tmax = 0;

  float amax_of(const fused::GroupIn& in) const {
    return has_tmax ? tmax : fused::abs_max(in);
  }
  static float s_of(float amax, const fused::GroupIn& in, float& s0) {
    s0 = (in.has_beta ? amax * in.beta : amax) / kMax;
    return s0 < kScaleFloor ? kScaleFloor : s0;
  }
  static float x_of(const fused::GroupIn& in, int64_t j, float s) {
    float x = in.w[j] / s;
    return in.v ? x + in.v[j] : x;
  }
  static float element(float xc) { return fused::ste_value(fused::e4m3_round(xc), xc); }

  void forward(const fused::GroupIn& in, float* out, float& scale, float& zp) const {
    float s0;
    const float s = s_of(amax_of(in), in, s0);
    for (int64_t j = 0; j < in.L; ++j) out[j] = element(fused::clamp(x_of(in, j, s), -kMax, kMax)) * s;
    scale = s, zp = 0;
  }

  void backward(const fused::GroupIn& in, const float* g, float* gv, float* gx, float& ga,
                float& gb) const {
    float s0;
    const float amax = amax_of(in);
    const float s = s_of(amax, in, s0);
    float gt = 0, gw = 0;  // Σ g·t and Σ (dL/dx)·w: ∂ŵ/∂s = t, ∂x/∂s = -w/s²
    for (int64_t j = 0; j < in.L; ++j) {
      const float x = x_of(in, j, s);
      const bool inside = x >= -kMax && x <= kMax;
      const float dx = inside ? g[j] * s : 0.0f;
      if (gv) gv[j] = dx;
      if (gx) gx[j] = dx / s;  // x = w/s
      gt += g[j] * element(fused::clamp(x, -kMax, kMax));
      gw += dx * in.w[j];
    }
    const float gs = gt - gw / (s * s);
    if (s0 < kScaleFloor) return;  // s sits on its floor: no gradient to the scale
    const float gm = gs / kMax;        // dL/dm, m = amax·β
    if (in.has_beta) gb = gm * amax;
    if (!has_tmax) fused::add_amax_grad(in, gx, gm * (in.has_beta ? in.beta : 1.0f));
  }
};

QdqResult reference_result(const Prepared& p, const Tunables& t, const at::Tensor& tmax) {
  auto parts = reference_parts(p.wg, t, tmax);
  return {from_groups(parts.w_hat, p.g), parts.s, at::Tensor()};
}

QdqResult fused_result(const Prepared& p, const Tunables& t, const at::Tensor& tmax = {}) {
  SR_CHECK(fused_eligible(p.wg, t), "[fp8::qdq_fused] needs CPU fp32 tensors");
  Kernel k;
  if (tmax.defined()) {
    SR_CHECK(tmax.numel() == 1, "[fp8::qdq_fused] a static tensor_max must have one element");
    k.has_tmax = true, k.tmax = tmax.detach().to(at::kFloat).item<float>();
  }
  auto outs = fused::apply(k, p.wg, t);
  return {from_groups(outs[0], p.g), outs[1], at::Tensor()};
}

}  // namespace

QdqResult qdq_reference(const at::Tensor& w, const Format& f, const Tunables& t,
                        const at::Tensor& tensor_max) {
  return reference_result(prepare(w, f, t, "fp8::qdq_reference"), t, tensor_max);
}

QdqResult qdq_fused(const at::Tensor& w, const Format& f, const Tunables& t) {
  return fused_result(prepare(w, f, t, "fp8::qdq_fused"), t);
}

QdqResult qdq(const at::Tensor& w, const Format& f, const Tunables& t, const at::Tensor& tensor_max) {
  auto p = prepare(w, f, t, "fp8::qdq");
  const bool scalar_max = !tensor_max.defined() || tensor_max.numel() == 1;
  if (scalar_max && fused_eligible(p.wg, t)) return fused_result(p, t, tensor_max);
  return reference_result(p, t, tensor_max);
}

Encoded encode(const at::Tensor& w, const Format& f, const Tunables& t, const at::Tensor& tensor_max) {
  at::NoGradGuard no_grad;
  auto p = prepare(w, f, t, "fp8::encode");
  auto parts = reference_parts(p.wg, t, tensor_max);
  Encoded e;
  e.codes = codec::e4m3_encode(from_groups(parts.t, p.g));
  e.scales = groups_to_matrix(parts.s, p.g).clone();
  return e;
}

at::Tensor decode(const Encoded& e, const Format& f) {
  SR_CHECK(e.codes.defined() && e.scales.defined(), "[fp8::decode] codes and scales required");
  auto g = group_layout(e.codes.sizes(), f.group_size);
  auto s = matrix_to_groups(e.scales.to(at::kFloat), g).unsqueeze(1);
  return from_groups(to_groups(codec::e4m3_decode(e.codes), g, 0.0) * s, g);
}

}  // namespace sr::fp8
