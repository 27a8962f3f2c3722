// INT qdq: composed reference, fused CPU kernel, encode/decode and the §3.3.1 search.
// The formulas are in int_quant.h; the reference below is their literal transcription.
#include "quant/formats/int_quant.h"

#include <limits>

#include "common/error.h"
#include "common/half.h"
#include "quant/formats/fused.h"

namespace sr::int_quant {
namespace {

float maxq_of(const Format& f) { return float((1 << f.bits) - 1); }
float nmax_of(const Format& f) { return float(1 << (f.bits - 1)); }

// Throws sr::Error naming `fn` unless 2 <= bits <= 8 (and a valid group size).
void check_format(const Format& f, const char* fn) {
  SR_CHECK(f.bits >= 2 && f.bits <= 8, "[", fn, "] INT bits must be in [2, 8], got ", f.bits);
  check_group_size(f.group_size, fn);
}

using Prepared = GroupedWeight;

Prepared prepare(const at::Tensor& w, const Format& f, const Tunables& t, const char* fn) {
  check_format(f, fn);
  return group_weight(w, f.group_size, t, fn);
}

// The scale as stored: fp16 (straight-through) unless fp32 scales were asked for.
at::Tensor round_scale(const at::Tensor& r, const Format& f) {
  if (!f.scale_fp16) return r;
  return ste(r.detach().to(at::kHalf).to(at::kFloat), r);
}

at::Tensor rne_ste(const at::Tensor& x) { return ste(at::round(x.detach()), x); }

// Everything the asym/sym reference computes; q is the integer level (asym: code; sym: signed).
struct Parts {
  at::Tensor w_hat, s, zp, q;  // [N, L], [N], [N], [N, L]
};

Parts asym_reference(const at::Tensor& wg, const Format& f, const Tunables& t) {
  const float maxq = maxq_of(f);
  auto wmin = at::clamp_max(at::amin(wg, 1), 0);
  auto wmax = at::clamp_min(at::amax(wg, 1), 0);
  if (t.alpha.defined()) wmin = wmin * t.alpha;
  if (t.beta.defined()) wmax = wmax * t.beta;
  auto s = at::clamp_min(round_scale((wmax - wmin) / maxq, f), scale_floor(f));
  auto zp = rne_ste(-wmin / s);
  auto sc = s.unsqueeze(1), z = zp.unsqueeze(1);
  auto u = wg / sc;
  if (t.v.defined()) u = u + t.v;
  auto q = at::clamp(rne_ste(u) + z, 0, maxq);
  return {sc * (q - z), s, zp, q};
}

// The signed scale before rounding: init·β in init-scale mode, else m/nmax (§1.2).
at::Tensor sym_base_scale(const at::Tensor& wg, const Format& f, const Tunables& t) {
  if (t.init_scale.defined()) return t.beta.defined() ? t.init_scale * t.beta : t.init_scale;
  auto a = -at::clamp_max(at::amin(wg, 1), 0);
  auto c = at::clamp_min(at::amax(wg, 1), 0);
  if (t.alpha.defined()) a = a * t.alpha;
  if (t.beta.defined()) c = c * t.beta;
  return at::where(c < a, a, -c) / nmax_of(f);
}

Parts sym_reference(const at::Tensor& wg, const Format& f, const Tunables& t) {
  const float nmax = nmax_of(f), th = scale_floor(f);
  auto s = round_scale(sym_base_scale(wg, f, t), f);
  s = at::where(s < 0, at::clamp_max(s, -th), at::clamp_min(s, th));
  auto sc = s.unsqueeze(1);
  auto u = wg / sc;
  if (t.v.defined()) u = u + t.v;
  auto q = at::clamp(rne_ste(u), -nmax, nmax - 1);
  return {sc * q, s, at::full_like(s, nmax), q};
}

Parts reference_parts(const at::Tensor& wg, const Format& f, const Tunables& t) {
  return f.sym ? sym_reference(wg, f, t) : asym_reference(wg, f, t);
}

// ---------------------------------------------------------------------------------------
// Fused kernel: the same arithmetic, one group at a time.

struct Kernel {
  bool sym = true, fp16 = true;
  float maxq = 15, nmax = 8, th = 1e-5f;

  float round_scale(float r) const {
    return fp16 ? fused::ste_value(f16_to_f32(f32_to_f16(r)), r) : r;
  }
  // The group's raw min/max and their clamps at 0 (wmin0 <= 0 <= wmax0).
  struct Range { float mn = 0, mx = 0, wmin0 = 0, wmax0 = 0; };
  static Range min_max(const fused::GroupIn& in) {
    Range r;
    r.mn = r.mx = in.w[0];
    for (int64_t j = 1; j < in.L; ++j) r.mn = std::min(r.mn, in.w[j]), r.mx = std::max(r.mx, in.w[j]);
    r.wmin0 = r.mn < 0 ? r.mn : 0.0f;
    r.wmax0 = r.mx > 0 ? r.mx : 0.0f;
    return r;
  }
  // dL/dw through wmin0 = clamp_max(amin(w), 0) and wmax0 = clamp_min(amax(w), 0).
  static void add_range_grad(const fused::GroupIn& in, const Range& r, float* gx, float g_wmin0,
                             float g_wmax0) {
    if (r.mn <= 0) fused::add_extreme_grad(in, gx, r.mn, g_wmin0);
    if (r.mx >= 0) fused::add_extreme_grad(in, gx, r.mx, g_wmax0);
  }
  float level(const fused::GroupIn& in, int64_t j, float s) const {
    float u = in.w[j] / s;
    if (in.v) u = u + in.v[j];
    return fused::ste_value(fused::rne(u), u);
  }

  // asym: s, zp and the pieces the backward needs
  struct Asym { Range r; float wmin, s16, s, z; };
  Asym asym_scale(const fused::GroupIn& in) const {
    Asym a;
    a.r = min_max(in);
    a.wmin = in.has_alpha ? a.r.wmin0 * in.alpha : a.r.wmin0;
    float wmax = in.has_beta ? a.r.wmax0 * in.beta : a.r.wmax0;
    a.s16 = round_scale((wmax - a.wmin) / maxq);
    a.s = a.s16 < th ? th : a.s16;
    float zr = -a.wmin / a.s;
    a.z = fused::ste_value(fused::rne(zr), zr);
    return a;
  }

  struct Sym { Range r; float a = 0, c = 0, s16, s; };
  Sym sym_scale(const fused::GroupIn& in) const {
    Sym y;
    float base;
    if (in.has_init) {
      base = in.has_beta ? in.init * in.beta : in.init;
    } else {
      y.r = min_max(in);
      y.a = in.has_alpha ? -y.r.wmin0 * in.alpha : -y.r.wmin0;
      y.c = in.has_beta ? y.r.wmax0 * in.beta : y.r.wmax0;
      base = (y.c < y.a ? y.a : -y.c) / nmax;
    }
    y.s16 = round_scale(base);
    y.s = y.s16 < 0 ? (-th < y.s16 ? -th : y.s16) : (y.s16 < th ? th : y.s16);
    return y;
  }

  void forward(const fused::GroupIn& in, float* out, float& scale, float& zp) const {
    if (sym) {
      const float s = sym_scale(in).s;
      for (int64_t j = 0; j < in.L; ++j) out[j] = s * fused::clamp(level(in, j, s), -nmax, nmax - 1);
      scale = s, zp = nmax;
    } else {
      const Asym a = asym_scale(in);
      for (int64_t j = 0; j < in.L; ++j)
        out[j] = a.s * (fused::clamp(level(in, j, a.s) + a.z, 0.0f, maxq) - a.z);
      scale = a.s, zp = a.z;
    }
  }

  void backward(const fused::GroupIn& in, const float* g, float* gv, float* gx, float& ga,
                float& gb) const {
    sym ? backward_sym(in, g, gv, gx, ga, gb) : backward_asym(in, g, gv, gx, ga, gb);
  }

  void backward_asym(const fused::GroupIn& in, const float* g, float* gv, float* gx, float& ga,
                     float& gb) const {
    const Asym a = asym_scale(in);
    const float s = a.s;
    float gq_sum = 0, gw = 0, gz = 0;  // Σ g·(q - z), Σ gq·w (∂u/∂s = -w/s²), dL/dzp
    for (int64_t j = 0; j < in.L; ++j) {
      const float q1 = level(in, j, s) + a.z;
      const bool inside = q1 >= 0.0f && q1 <= maxq;
      const float gq = inside ? g[j] * s : 0.0f;  // dL/d(level): through ŵ = s·(q - z)
      if (gv) gv[j] = gq;
      if (gx) gx[j] = gq / s;  // u = w/s
      gq_sum += g[j] * (fused::clamp(q1, 0.0f, maxq) - a.z);
      gw += gq * in.w[j];
      gz += gq - g[j] * s;
    }
    const float gs = gq_sum + (gz * a.wmin - gw) / (s * s);  // zp = rne(-wmin/s) adds gz·wmin/s²
    float gwmin = -gz / s;
    const float gr = a.s16 >= th ? gs : 0.0f;     // magnitude floor cuts the gradient
    gwmin -= gr / maxq;
    ga = gwmin * a.r.wmin0;
    gb = gr / maxq * a.r.wmax0;
    if (gx)
      add_range_grad(in, a.r, gx, gwmin * (in.has_alpha ? in.alpha : 1.0f),
                     gr / maxq * (in.has_beta ? in.beta : 1.0f));
  }

  void backward_sym(const fused::GroupIn& in, const float* g, float* gv, float* gx, float& ga,
                    float& gb) const {
    const Sym y = sym_scale(in);
    const float s = y.s;
    float gq_sum = 0, gw = 0;
    for (int64_t j = 0; j < in.L; ++j) {
      const float q0 = level(in, j, s);
      const bool inside = q0 >= -nmax && q0 <= nmax - 1;
      const float gq = inside ? g[j] * s : 0.0f;
      if (gv) gv[j] = gq;
      if (gx) gx[j] = gq / s;
      gq_sum += g[j] * fused::clamp(q0, -nmax, nmax - 1);
      gw += gq * in.w[j];
    }
    const float gs = gq_sum - gw / (s * s);
    const bool pass = y.s16 < 0 ? y.s16 <= -th : y.s16 >= th;
    const float gbase = pass ? gs : 0.0f;
    if (in.has_init) {
      gb = gbase * in.init;
      return;
    }
    const float gm = gbase / nmax;  // m = (c < a) ? a : -c with a = -wmin0·α, c = wmax0·β
    if (y.c < y.a) {
      ga = gm * -y.r.wmin0;
      if (gx) add_range_grad(in, y.r, gx, -gm * (in.has_alpha ? in.alpha : 1.0f), 0.0f);
    } else {
      gb = -gm * y.r.wmax0;
      if (gx) add_range_grad(in, y.r, gx, 0.0f, -gm * (in.has_beta ? in.beta : 1.0f));
    }
  }
};

Kernel make_kernel(const Format& f) {
  Kernel k;
  k.sym = f.sym, k.fp16 = f.scale_fp16;
  k.maxq = maxq_of(f), k.nmax = nmax_of(f), k.th = scale_floor(f);
  return k;
}

}  // namespace

float scale_floor(const Format& f) { return f.scale_fp16 ? f16_to_f32(f32_to_f16(1e-5f)) : 1e-8f; }

QdqResult reference_result(const Prepared& p, const Format& f, const Tunables& t) {
  auto parts = reference_parts(p.wg, f, t);
  return {from_groups(parts.w_hat, p.g), parts.s, parts.zp};
}

QdqResult fused_result(const Prepared& p, const Format& f, const Tunables& t) {
  SR_CHECK(fused_eligible(p.wg, t), "[int_quant::qdq_fused] needs CPU fp32 tensors");
  auto outs = fused::apply(make_kernel(f), p.wg, t);
  return {from_groups(outs[0], p.g), outs[1], outs[2]};
}

QdqResult qdq_reference(const at::Tensor& w, const Format& f, const Tunables& t) {
  return reference_result(prepare(w, f, t, "int_quant::qdq_reference"), f, t);
}

QdqResult qdq_fused(const at::Tensor& w, const Format& f, const Tunables& t) {
  return fused_result(prepare(w, f, t, "int_quant::qdq_fused"), f, t);
}

QdqResult qdq(const at::Tensor& w, const Format& f, const Tunables& t) {
  auto p = prepare(w, f, t, "int_quant::qdq");
  return fused_eligible(p.wg, t) ? fused_result(p, f, t) : reference_result(p, f, t);
}

Encoded encode(const at::Tensor& w, const Format& f, const Tunables& t) {
  at::NoGradGuard no_grad;
  auto p = prepare(w, f, t, "int_quant::encode");
  auto parts = reference_parts(p.wg, f, t);
  auto codes = f.sym ? parts.q + nmax_of(f) : parts.q;
  Encoded e;
  e.codes = from_groups(codes, p.g).to(at::kByte);
  e.scales = groups_to_matrix(parts.s, p.g).to(f.scale_fp16 ? at::kHalf : at::kFloat);
  e.zeros = groups_to_matrix(parts.zp, p.g).to(at::kByte);
  return e;
}

at::Tensor decode(const Encoded& e, const Format& f) {
  check_format(f, "int_quant::decode");
  SR_CHECK(e.codes.defined() && e.codes.scalar_type() == at::kByte,
           "[int_quant::decode] expected uint8 codes");
  auto g = group_layout(e.codes.sizes(), f.group_size);
  auto s = matrix_to_groups(e.scales.to(at::kFloat), g).unsqueeze(1);
  auto z = matrix_to_groups(e.zeros.to(at::kFloat), g).unsqueeze(1);
  auto c = to_groups(e.codes.to(at::kFloat), g, 0.0);
  return from_groups(s * (c - z), g);
}

// ---------------------------------------------------------------------------------------
// §3.3.1 search.
namespace {

constexpr float kInitScaleFloor = 1e-5f;  // q_scale_thresh applied to the searched scale

// Effective nmax' of each candidate in search order: baseline nmax, then k = -K..K, k != 0.
std::vector<float> candidate_nmax(int bits) {
  const double nmax = double(1 << (bits - 1));
  const int k_max = bits == 2 ? 90 : 100;
  const double step = bits == 2 ? 0.01 : 2.0 * 0.75 * nmax / 200.0;
  std::vector<float> out{float(nmax)};
  for (int k = -k_max; k <= k_max; ++k)
    if (k != 0) out.push_back(float(nmax - step * k));
  return out;
}

at::Tensor floor_keep_sign(const at::Tensor& s) {
  return at::where(s < 0, at::clamp_max(s, -kInitScaleFloor), at::clamp_min(s, kInitScaleFloor));
}

// The signed element of largest magnitude per row (first one on ties).
float signed_absmax(const float* w, int64_t L) {
  float best = w[0];
  for (int64_t j = 1; j < L; ++j)
    if (std::fabs(w[j]) > std::fabs(best)) best = w[j];
  return best;
}

// |is·w| <= nmax' <= 3.5·nmax here (|w| <= |gmax|), far below 2^22: the 2^23 trick rounds
// half to even with no branch. Eight partial sums let the compiler vectorize the loop.
float candidate_loss(const float* w, const float* q, int64_t L, float is, float s, float nmax) {
  constexpr int kLanes = 8;
  const float two23 = 8388608.0f;
  float acc[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + kLanes <= L; j += kLanes) {
    for (int k = 0; k < kLanes; ++k) {
      const float x = is * w[j + k];
      const float l = fused::clamp(std::copysign((std::fabs(x) + two23) - two23, x), -nmax, nmax - 1);
      const float d = s * l - w[j + k];
      acc[k] += q[j + k] * (d * d);
    }
  }
  float e = 0;
  for (; j < L; ++j) {
    const float l = fused::clamp(fused::rne(is * w[j]), -nmax, nmax - 1);
    const float d = s * l - w[j];
    e += q[j] * (d * d);
  }
  for (float a : acc) e += a;
  return e;
}

float search_group(const float* w, const float* q, int64_t L, const std::vector<float>& cands,
                   float nmax) {
  const float gmax = signed_absmax(w, L);
  if (gmax == 0) return kInitScaleFloor;
  float best_s = 0, best_e = std::numeric_limits<float>::infinity();
  for (float nk : cands) {
    const float is = -nk / gmax;
    const float s = 1.0f / is;
    const float e = candidate_loss(w, q, L, is, s, nmax);
    if (e < best_e) best_e = e, best_s = s;
  }
  return best_s < 0 ? std::min(best_s, -kInitScaleFloor) : std::max(best_s, kInitScaleFloor);
}

}  // namespace

at::Tensor search_init_scale_reference(const at::Tensor& wg, const Format& f,
                                       const at::Tensor& importance) {
  check_format(f, "int_quant::search_init_scale");
  at::NoGradGuard no_grad;
  const float nmax = nmax_of(f);
  auto w = wg.to(at::kFloat);
  auto q = importance.to(at::kFloat);
  auto gmax = w.gather(1, w.abs().argmax(1, /*keepdim=*/true)).squeeze(1);
  at::Tensor best_s, best_e;
  for (float nk : candidate_nmax(f.bits)) {
    auto is = at::where(gmax == 0, at::zeros_like(gmax), -nk / gmax);
    auto s = recip(is);
    auto l = at::clamp(at::round(is.unsqueeze(1) * w), -nmax, nmax - 1);
    auto e = (q * (s.unsqueeze(1) * l - w).square()).sum(1);
    if (!best_s.defined()) {
      best_s = s, best_e = e;
      continue;
    }
    auto better = e < best_e;
    best_s = at::where(better, s, best_s);
    best_e = at::where(better, e, best_e);
  }
  return floor_keep_sign(best_s);
}

at::Tensor search_init_scale(const at::Tensor& wg, const Format& f, const at::Tensor& importance) {
  check_format(f, "int_quant::search_init_scale");
  SR_CHECK(wg.dim() == 2 && importance.sizes() == wg.sizes(), "[int_quant::search_init_scale] "
           "expected wg [N, L] and importance of the same shape, got ", wg.sizes(), " and ",
           importance.sizes());
  if (!wg.device().is_cpu()) return search_init_scale_reference(wg, f, importance);
  auto w = wg.detach().to(at::kFloat).contiguous();
  auto q = importance.detach().to(at::kFloat).contiguous();
  const int64_t n = w.size(0), L = w.size(1);
  const auto cands = candidate_nmax(f.bits);
  const float nmax = nmax_of(f);
  auto out = at::empty({n}, w.options());
  const float *pw = w.data_ptr<float>(), *pq = q.data_ptr<float>();
  float* po = out.data_ptr<float>();
  at::parallel_for(0, n, std::max<int64_t>(1, 2048 / L), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) po[i] = search_group(pw + i * L, pq + i * L, L, cands, nmax);
  });
  return out;
}

}  // namespace sr::int_quant
