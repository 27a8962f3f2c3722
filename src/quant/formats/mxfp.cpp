// MX qdq: composed reference (a transcription of auto-round's quant_mx / quant_element with
// exact exponents), fused CPU kernel, encode/decode, and the §3.3.2 search.
#include "quant/formats/mxfp.h"

#include "common/error.h"
#include "quant/formats/fp_codecs.h"
#include "quant/formats/fused.h"

namespace sr::mxfp {
namespace {

constexpr float kLn2 = 0.693147180559945309f;

// The element table (auto-round MXFP_FORMAT_CACHE): ebits, mbits (sign + implicit bit included),
// emax, max normal, exponent of the smallest normal.
struct ElementInfo {
  int ebits, mbits, emax;
  float max_norm;
  int min_exp;
};
ElementInfo element_info(Element e) {
  if (e == Element::E2M1) return {2, 3, 2, codec::kE2M1Max, codec::kE2M1MinExp};
  return {4, 5, 8, codec::kE4M3Max, codec::kE4M3MinExp};
}

using Prepared = GroupedWeight;

Prepared prepare(const at::Tensor& w, const Format& f, const Tunables& t, const char* fn) {
  check_group_size(f.group_size, fn);
  return group_weight(w, f.group_size, t, fn);
}

// Shared exponent with the straight-through surrogate log2 (floor_ste / ceil_ste of §1.3).
at::Tensor shared_exponent_ste(const at::Tensor& am, const Format& f) {
  const auto info = element_info(f.element);
  auto a = am.detach();
  auto zero = a == 0;
  if (f.rule == ScaleRule::Floor) {
    auto lg = at::log2(at::where(zero, at::ones_like(am), am));
    auto value = at::where(zero, at::ones_like(a), codec::floor_log2(a));
    return at::clamp(ste(value, lg) - info.emax, -127, 127);
  }
  auto y = am / info.max_norm;
  auto yd = y.detach();
  auto under = yd == 0;  // amax / max_norm underflowed: log2 is -inf, E clamps to -127
  auto lg = at::log2(at::where(under, at::ones_like(y), y));
  auto value = at::where(zero, at::ones_like(a),
                         at::where(under, at::full_like(a, -127.0f), codec::ceil_log2(yd)));
  return at::clamp(ste(value, lg), -127, 127);
}

// quant_element of §1.3 with "even" rounding: private exponent floor_ste(log2|x|) clipped at
// the min normal exponent, RNE of the scaled mantissa, then undo the scaling.
at::Tensor quant_element(const at::Tensor& xc, const ElementInfo& info) {
  auto arg = xc.abs() + (xc == 0).to(at::kFloat);
  auto e = at::clamp_min(ste(codec::floor_log2(arg.detach()), at::log2(arg)), info.min_exp);
  auto p = ste(codec::pow2(e.detach()), at::exp2(e));
  const float c = float(1 << (info.mbits - 2));
  auto u = xc / p * c;
  auto au = u.abs();
  auto ur = at::sign(u) * ste(at::round(au.detach()), au);
  return at::clamp(ur / c * p, -info.max_norm, info.max_norm);
}

struct Parts {
  at::Tensor w_hat, e, t;  // [N, L], [N], [N, L] element values
};

Parts reference_parts(const at::Tensor& wg, const Format& f, const Tunables& t) {
  const auto info = element_info(f.element);
  auto e = shared_exponent_ste(scaled_amax(group_amax(wg), t), f);
  auto s = ste(codec::pow2(e.detach()), at::exp2(e)).unsqueeze(1);
  auto x = wg / s;
  if (t.v.defined()) x = x + t.v;
  auto el = quant_element(at::clamp(x, -info.max_norm, info.max_norm), info);
  return {el * s, e, el};
}

// ---------------------------------------------------------------------------------------

struct Kernel {
  bool e2m1 = true, rceil = false;
  int emax = 2, min_exp = 0;
  float max_norm = 6.0f, min_normal = 1.0f;  // min_normal = 2^min_exp

  struct Scale { float amax, am, e0, e, s, inv_s; };
  Scale scale(const fused::GroupIn& in) const {
    Scale r;
    r.amax = fused::abs_max(in);
    r.am = r.amax * fused::amax_coef(in);
    if (!rceil) {
      r.e0 = (r.am == 0 ? 1.0f : float(codec::floor_log2(r.am))) - emax;
    } else {
      const float y = r.am / max_norm;
      r.e0 = r.am == 0 ? 1.0f : (y == 0 ? -127.0f : float(codec::ceil_log2(y)));
    }
    r.e = fused::clamp(r.e0, -127.0f, 127.0f);
    r.s = codec::pow2(int(r.e));
    r.inv_s = codec::pow2(-int(r.e));  // exact: w·inv_s == w/s bit for bit
    return r;
  }
  // ±0 gives +0 (sign(0) = 0 in quant_element); other values keep their sign.
  float element(float xc) const {
    const float t = e2m1 ? fused::e2m1_round(xc) : fused::e4m3_round(xc);
    return xc == 0 ? 0.0f : t;
  }
  static float x_of(const fused::GroupIn& in, int64_t j, float inv_s) {
    float x = in.w[j] * inv_s;
    return in.v ? x + in.v[j] : x;
  }

  void forward(const fused::GroupIn& in, float* out, float& scale, float& zp) const {
    const Scale r = this->scale(in);
    for (int64_t j = 0; j < in.L; ++j)
      out[j] = element(fused::clamp(x_of(in, j, r.inv_s), -max_norm, max_norm)) * r.s;
    scale = r.e, zp = 0;
  }

  // Straight-through slope of quant_element at xc (see mxfp.h): t/xc where the private
  // exponent floor(log2|xc|) >= min_exp, i.e. |xc| >= 2^min_exp; 1 below; 0 at xc == 0.
  float slope(float xc, float t) const {
    const float r = std::fabs(xc) >= min_normal ? t / xc : 1.0f;
    return xc == 0 ? 0.0f : r;
  }

  void backward(const fused::GroupIn& in, const float* g, float* gv, float* gx, float& ga,
                float& gb) const {
    const Scale r = this->scale(in);
    const float s = r.s;
    float gt = 0, gw = 0;  // Σ g·t and Σ (dL/dx)·w: ∂ŵ/∂S = t, ∂x/∂S = -w/S²
    for (int64_t j = 0; j < in.L; ++j) {
      const float x = x_of(in, j, r.inv_s);
      const float xc = fused::clamp(x, -max_norm, max_norm);
      const float t = element(xc);
      const bool inside = x >= -max_norm && x <= max_norm;
      const float dx = inside ? g[j] * s * slope(xc, t) : 0.0f;  // dL/dx
      if (gv) gv[j] = dx;
      if (gx) gx[j] = dx * r.inv_s;  // x = w/S
      gt += g[j] * t;
      gw += dx * in.w[j];
    }
    const float gs = gt - gw / (s * s);
    if (r.am == 0 || r.e0 < -127.0f || r.e0 > 127.0f) return;
    if (rceil && r.am / max_norm == 0) return;
    const float gam = gs * s * kLn2 / (r.am * kLn2);  // dS/dE = S·ln2, dE/dam = 1/(am·ln2)
    if (in.has_beta) gb = gam * r.amax * (in.has_init ? in.init : 1.0f);
    fused::add_amax_grad(in, gx, gam * fused::amax_coef(in));  // am = amax·coef
  }
};

Kernel make_kernel(const Format& f) {
  const auto info = element_info(f.element);
  Kernel k;
  k.e2m1 = f.element == Element::E2M1, k.rceil = f.rule == ScaleRule::Rceil;
  k.emax = info.emax, k.min_exp = info.min_exp, k.max_norm = info.max_norm;
  k.min_normal = codec::pow2(info.min_exp);
  return k;
}

QdqResult reference_result(const Prepared& p, const Format& f, const Tunables& t) {
  auto parts = reference_parts(p.wg, f, t);
  return {from_groups(parts.w_hat, p.g), parts.e, at::Tensor()};
}

QdqResult fused_result(const Prepared& p, const Format& f, const Tunables& t) {
  SR_CHECK(fused_eligible(p.wg, t), "[mxfp::qdq_fused] needs CPU fp32 tensors");
  auto outs = fused::apply(make_kernel(f), p.wg, t);
  return {from_groups(outs[0], p.g), outs[1], at::Tensor()};
}

}  // namespace

int shared_exponent(float amax, const Format& f) {
  const auto info = element_info(f.element);
  int e;
  if (f.rule == ScaleRule::Floor) {
    e = amax == 0 ? 1 - info.emax : codec::floor_log2(amax) - info.emax;
  } else {
    const float y = amax / info.max_norm;
    e = amax == 0 ? 1 : (y == 0 ? -127 : codec::ceil_log2(y));
  }
  return std::min(127, std::max(-127, e));
}

QdqResult qdq_reference(const at::Tensor& w, const Format& f, const Tunables& t) {
  return reference_result(prepare(w, f, t, "mxfp::qdq_reference"), f, t);
}

QdqResult qdq_fused(const at::Tensor& w, const Format& f, const Tunables& t) {
  return fused_result(prepare(w, f, t, "mxfp::qdq_fused"), f, t);
}

QdqResult qdq(const at::Tensor& w, const Format& f, const Tunables& t) {
  auto p = prepare(w, f, t, "mxfp::qdq");
  return fused_eligible(p.wg, t) ? fused_result(p, f, t) : reference_result(p, f, t);
}

Encoded encode(const at::Tensor& w, const Format& f, const Tunables& t) {
  at::NoGradGuard no_grad;
  auto p = prepare(w, f, t, "mxfp::encode");
  auto parts = reference_parts(p.wg, f, t);
  auto el = from_groups(parts.t, p.g);
  Encoded e;
  e.codes = f.element == Element::E2M1 ? codec::e2m1_encode(el) : codec::e4m3_encode(el);
  e.scales = codec::e8m0_encode(groups_to_matrix(parts.e, p.g));
  return e;
}

at::Tensor decode(const Encoded& e, const Format& f) {
  check_group_size(f.group_size, "mxfp::decode");
  SR_CHECK(e.codes.defined() && e.scales.defined(), "[mxfp::decode] codes and scales required");
  auto g = group_layout(e.codes.sizes(), f.group_size);
  auto el = f.element == Element::E2M1 ? codec::e2m1_decode(e.codes) : codec::e4m3_decode(e.codes);
  auto s = matrix_to_groups(codec::e8m0_decode(e.scales), g).unsqueeze(1);
  return from_groups(to_groups(el, g, 0.0) * s, g);
}

at::Tensor search_init_scale(const at::Tensor& wg, const Format& f, const at::Tensor& importance) {
  Format fg = f;  // qdq on the grouped [N, L] tensor: same groups (one row per group)
  if (f.group_size > 0) fg.group_size = wg.size(1);
  auto run = [&](const at::Tensor& init) {
    return qdq(wg, fg, Tunables{at::Tensor(), at::Tensor(), at::Tensor(), init}).w_hat;
  };
  return search_best_multiplier(wg, importance, {1.0f, 0.5f, 2.0f}, run);
}

}  // namespace sr::mxfp
