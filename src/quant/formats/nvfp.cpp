// NVFP4 qdq: composed reference (ref_nvfp4_quant transcribed), fused CPU kernel,
// encode/decode, static-global-scale activations and the §3.3.3 search.
#include "quant/formats/nvfp.h"

#include "common/error.h"
#include "quant/formats/fp_codecs.h"
#include "quant/formats/fused.h"

namespace sr::nvfp {
namespace {

constexpr float kGlobalNumerator = 448.0f * 6.0f;  // FLOAT8_E4M3_MAX · FLOAT4_E2M1_MAX
constexpr float kInvSix = 1.0f / 6.0f;             // get_reciprocal(6.0) as applied to fp32

struct Prepared : GroupedWeight {
  at::Tensor gs;  // fp32 [1]
};

Prepared prepare(const at::Tensor& w, const Format& f, const Tunables& t, const at::Tensor& gs,
                 const char* fn) {
  SR_CHECK(f.group_size == 16, "[", fn, "] NVFP4 needs group_size 16, got ", f.group_size);
  GroupedWeight grouped = group_weight(w, f.group_size, t, fn);
  at::Tensor scale = gs.defined() ? gs.detach().to(at::kFloat).reshape({1}) : global_scale(w);
  SR_CHECK(scale.numel() == 1, "[", fn, "] global scale must have one element, got ", gs.sizes());
  return {grouped, scale.to(w.device())};
}

// cast_to_fp4 of nvfp.py: sign(x)·RNE(|x|) on the E2M1 grid, each step straight-through.
at::Tensor cast_to_fp4(const at::Tensor& x) {
  auto a = x.abs();
  return at::sign(x) * ste(codec::e2m1_round(a.detach()), a);
}

struct Parts {
  at::Tensor w_hat, sb, f;  // [N, L], [N], [N, L]
};

Parts reference_parts(const at::Tensor& wg, const Tunables& t, const at::Tensor& gs) {
  auto m = scaled_amax(group_amax(wg), t);
  auto sb = at::clamp(gs * (m * kInvSix), -448.0, 448.0);
  sb = ste(codec::e4m3_round(sb.detach()), sb);
  auto k = recip(sb * recip(gs)).unsqueeze(1);
  auto x = wg * k;
  if (t.v.defined()) x = x + t.v;
  auto f = cast_to_fp4(at::clamp(x, -6.0, 6.0));
  return {f * recip(k), sb, f};
}

// ---------------------------------------------------------------------------------------

struct Kernel {
  float gs = 1.0f, rgs = 1.0f;  // global scale and recip(gs)

  struct Scale { float amax, sb0, sb, d, k, rk; };
  Scale scale(const fused::GroupIn& in) const {
    Scale r;
    r.amax = fused::abs_max(in);
    const float m = r.amax * fused::amax_coef(in);
    r.sb0 = gs * (m * kInvSix);
    const float sb1 = fused::clamp(r.sb0, -448.0f, 448.0f);
    r.sb = fused::ste_value(codec::e4m3_round(sb1), sb1);
    r.d = r.sb * rgs;
    r.k = r.d == 0 ? 0.0f : 1.0f / r.d;
    r.rk = r.k == 0 ? 0.0f : 1.0f / r.k;
    return r;
  }
  static float element(float xc) {
    const float t = fused::e2m1_round(xc);
    return xc == 0 ? 0.0f : t;
  }
  static float x_of(const fused::GroupIn& in, int64_t j, float k) {
    float x = in.w[j] * k;
    return in.v ? x + in.v[j] : x;
  }

  void forward(const fused::GroupIn& in, float* out, float& scale, float& zp) const {
    const Scale r = this->scale(in);
    for (int64_t j = 0; j < in.L; ++j)
      out[j] = element(fused::clamp(x_of(in, j, r.k), -6.0f, 6.0f)) * r.rk;
    scale = r.sb, zp = 0;
  }

  void backward(const fused::GroupIn& in, const float* g, float* gv, float* gx, float& ga,
                float& gb) const {
    const Scale r = this->scale(in);
    const float dk_rk = r.k == 0 ? 0.0f : -1.0f / (r.k * r.k);  // d recip(k) / dk
    float gk = 0;
    for (int64_t j = 0; j < in.L; ++j) {
      const float x = x_of(in, j, r.k);
      const float xc = fused::clamp(x, -6.0f, 6.0f);
      const bool pass = x >= -6.0f && x <= 6.0f && xc != 0;
      const float dx = pass ? g[j] * r.rk : 0.0f;
      if (gv) gv[j] = dx;
      if (gx) gx[j] = dx * r.k;  // x = w·k
      gk += g[j] * element(xc) * dk_rk + dx * in.w[j];
    }
    if (r.d == 0 || r.sb0 < -448.0f || r.sb0 > 448.0f) return;
    const float gm = gk * (-1.0f / (r.d * r.d)) * rgs * gs * kInvSix;  // dL/dm, m = amax·coef
    if (in.has_beta) gb = gm * r.amax * (in.has_init ? in.init : 1.0f);
    fused::add_amax_grad(in, gx, gm * fused::amax_coef(in));
  }
};

Kernel make_kernel(const at::Tensor& gs) {
  Kernel k;
  k.gs = gs.item<float>();
  k.rgs = k.gs == 0 ? 0.0f : 1.0f / k.gs;
  return k;
}

QdqResult reference_result(const Prepared& p, const Tunables& t) {
  auto parts = reference_parts(p.wg, t, p.gs);
  return {from_groups(parts.w_hat, p.g), parts.sb, at::Tensor()};
}

QdqResult fused_result(const Prepared& p, const Tunables& t) {
  SR_CHECK(fused_eligible(p.wg, t), "[nvfp::qdq_fused] needs CPU fp32 tensors");
  auto outs = fused::apply(make_kernel(p.gs), p.wg, t);
  return {from_groups(outs[0], p.g), outs[1], at::Tensor()};
}

}  // namespace

at::Tensor global_scale(const at::Tensor& w) {
  at::NoGradGuard no_grad;
  return (recip(w.to(at::kFloat).abs().max()) * kGlobalNumerator).reshape({1});
}

at::Tensor fuse_global_scales(at::TensorList scales) {
  SR_CHECK(!scales.empty(), "[nvfp::fuse_global_scales] no scales given");
  auto all = at::stack(std::vector<at::Tensor>(scales.begin(), scales.end())).to(at::kFloat);
  SR_CHECK(all.numel() == int64_t(scales.size()), "[nvfp::fuse_global_scales] each global scale "
           "must have one element");
  return all.min().reshape({1});
}

QdqResult qdq_reference(const at::Tensor& w, const Format& f, const Tunables& t,
                        const at::Tensor& gs) {
  return reference_result(prepare(w, f, t, gs, "nvfp::qdq_reference"), t);
}

QdqResult qdq_fused(const at::Tensor& w, const Format& f, const Tunables& t, const at::Tensor& gs) {
  return fused_result(prepare(w, f, t, gs, "nvfp::qdq_fused"), t);
}

QdqResult qdq(const at::Tensor& w, const Format& f, const Tunables& t, const at::Tensor& gs) {
  auto p = prepare(w, f, t, gs, "nvfp::qdq");
  return fused_eligible(p.wg, t) ? fused_result(p, t) : reference_result(p, t);
}

at::Tensor qdq_act(const at::Tensor& x, const Format& f, const at::Tensor& act_max) {
  at::Tensor gs;
  if (act_max.defined()) {
    at::NoGradGuard no_grad;
    gs = (recip(act_max.detach().to(at::kFloat).abs().max()) * kGlobalNumerator).reshape({1});
  }
  return qdq(x, f, {}, gs).w_hat;
}

Encoded encode(const at::Tensor& w, const Format& f, const Tunables& t, const at::Tensor& gs) {
  at::NoGradGuard no_grad;
  auto p = prepare(w, f, t, gs, "nvfp::encode");
  auto parts = reference_parts(p.wg, t, p.gs);
  Encoded e;
  e.codes = codec::e2m1_encode(from_groups(parts.f, p.g));
  e.scales = codec::e4m3_encode(groups_to_matrix(parts.sb, p.g));
  e.global_scale = p.gs.clone();
  return e;
}

at::Tensor decode(const Encoded& e, const Format& f) {
  SR_CHECK(e.codes.defined() && e.scales.defined() && e.global_scale.defined(),
           "[nvfp::decode] codes, scales and global_scale required");
  auto g = group_layout(e.codes.sizes(), f.group_size);
  auto gs = e.global_scale.to(at::kFloat).reshape({1});
  auto sb = matrix_to_groups(codec::e4m3_decode(e.scales), g);
  auto k = recip(sb * recip(gs)).unsqueeze(1);
  return from_groups(to_groups(codec::e2m1_decode(e.codes), g, 0.0) * recip(k), g);
}

namespace {

std::vector<float> search_candidates() {
  std::vector<float> cands{1.0f};
  for (int c = 50; c <= 151; ++c)
    if (c != 100) cands.push_back(float(c / 100.0));
  return cands;
}

// Best candidate of one block: the kernel's own forward (so ŵ equals the qdq's) per candidate.
float search_block(const Kernel& k, const float* w, const float* q, int64_t L,
                   const std::vector<float>& cands) {
  float buf[64], scale, zp, best_e = INFINITY, best_c = 1.0f;
  fused::GroupIn in;
  in.w = w, in.L = L, in.has_init = true;
  for (float c : cands) {
    in.init = c;
    k.forward(in, buf, scale, zp);
    float e = 0;
    for (int64_t j = 0; j < L; ++j) e += q[j] * ((buf[j] - w[j]) * (buf[j] - w[j]));
    if (e < best_e) best_e = e, best_c = c;
  }
  return best_c;
}

}  // namespace

at::Tensor search_init_scale_reference(const at::Tensor& wg, const Format& f,
                                       const at::Tensor& importance) {
  SR_CHECK(f.group_size == 16, "[nvfp::search_init_scale] NVFP4 needs group_size 16");
  const auto gs = global_scale(wg);  // this layer alone (§3.3.3)
  auto run = [&](const at::Tensor& init) {
    return qdq_reference(wg, f, Tunables{at::Tensor(), at::Tensor(), at::Tensor(), init}, gs).w_hat;
  };
  return search_best_multiplier(wg, importance, search_candidates(), run);
}

at::Tensor search_init_scale(const at::Tensor& wg, const Format& f, const at::Tensor& importance) {
  SR_CHECK(f.group_size == 16, "[nvfp::search_init_scale] NVFP4 needs group_size 16");
  SR_CHECK(wg.dim() == 2 && wg.size(1) == 16 && importance.sizes() == wg.sizes(),
           "[nvfp::search_init_scale] expected wg [N, 16] and importance of the same shape, got ",
           wg.sizes(), " and ", importance.sizes());
  if (!wg.device().is_cpu()) return search_init_scale_reference(wg, f, importance);
  at::NoGradGuard no_grad;
  auto w = wg.detach().to(at::kFloat).contiguous();
  auto q = importance.detach().to(at::kFloat).contiguous();
  const Kernel k = make_kernel(global_scale(w));
  const auto cands = search_candidates();
  const int64_t n = w.size(0), L = w.size(1);
  auto out = at::empty({n}, w.options());
  const float *pw = w.data_ptr<float>(), *pq = q.data_ptr<float>();
  float* po = out.data_ptr<float>();
  at::parallel_for(0, n, 256, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) po[i] = search_block(k, pw + i * L, pq + i * L, L, cands);
  });
  return out;
}

}  // namespace sr::nvfp
