// Internal to quant/formats: the fused CPU path shared by the format families.
//
// Each family's composed reference (torch ops + autograd through ste()) defines the numbers;
// the fused path recomputes them with one pass of plain C++ loops per group (at::parallel_for
// over groups) and must agree bit for bit on the forward value (tests compare int32 views).
// Its backward is written out by hand from the same formulas and is checked against the
// reference's autograd (within fp32 rounding, since the summation order differs).
//
// A kernel K provides, for one group row of length L:
//   void forward(const GroupIn& in, float* w_hat, float& scale, float& zp) const;
//   void backward(const GroupIn& in, const float* g, float* gv, float* gx, float& galpha,
//                 float& gbeta) const;
// gv (dL/dv) and gx (dL/dw, for activations: the direct path plus the path through the
// group's statistics, routed like torch's min/max backward) may be null when not wanted.
// Kernels are small value types; they are copied into the autograd graph.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "common/torch.h"
#include "quant/formats/group.h"

namespace sr::fused {

// One group row and its tunables. Absent tunables have has_* = false (and value 1 / null).
struct GroupIn {
  const float* w = nullptr;  // [L]
  const float* v = nullptr;  // [L] or null
  int64_t L = 0;
  float alpha = 1.0f, beta = 1.0f, init = 1.0f;
  bool has_alpha = false, has_beta = false, has_init = false;
};

// The forward value of ste(f, x) computed with the same two fp32 operations as the reference,
// so that signed zeros agree (a rounded zero comes out +0.0).
inline float ste_value(float f, float x) { return (f - x) + x; }

// Round half to even without a libm call (vectorizable with SSE2): exact for every fp32.
// For |x| < 2^23, adding and subtracting 2^23 rounds to an integer in the current (RNE) mode;
// larger magnitudes are integers already. Keeps the sign of zero like std::nearbyint.
inline float rne(float x) {
  const float two23 = 8388608.0f;
  float a = std::fabs(x);
  float r = a < two23 ? (a + two23) - two23 : a;
  return std::copysign(r, x);
}

// Branch-free twins of codec::e2m1_round / codec::e4m3_round for the hot loops, bit-identical
// on their domain (tested against the codecs): they compute the same rne(a/step)·step with the
// division by the power-of-two step replaced by an exact multiplication.
// REQUIRES: |x| <= 6 (e2m1) or |x| <= 448 (e4m3), x not NaN — the kernels clamp first.
// step = 2^(e-1) with e = floor(log2|x|) clamped to [0, 2]: 0.5 below 2, 1 in [2, 4), 2 above.
inline float e2m1_round(float x) {
  const float a = std::fabs(x);
  uint32_t u;
  std::memcpy(&u, &a, 4);
  const int e = std::min(std::max(int(u >> 23) - 127, 0), 2);
  const uint32_t step_bits = uint32_t(e - 1 + 127) << 23, inv_bits = uint32_t(1 - e + 127) << 23;
  float step, inv;
  std::memcpy(&step, &step_bits, 4);
  std::memcpy(&inv, &inv_bits, 4);
  return std::copysign(rne(a * inv) * step, x);
}
inline float e4m3_round(float x) {
  const float a = std::fabs(x);
  uint32_t u;
  std::memcpy(&u, &a, 4);
  const int e = std::max(int(u >> 23) - 127, -6);  // zero and fp32 subnormals land on -6
  const uint32_t step_bits = uint32_t(e - 3 + 127) << 23, inv_bits = uint32_t(3 - e + 127) << 23;
  float step, inv;
  std::memcpy(&step, &step_bits, 4);
  std::memcpy(&inv, &inv_bits, 4);
  return std::copysign(rne(a * inv) * step, x);
}

// torch.clamp(x, lo, hi) on one value, NaN propagating like ATen's.
inline float clamp(float x, float lo, float hi) {
  float y = x < lo ? lo : x;
  return hi < y ? hi : y;
}

// torch.sign as fp32 (0 for ±0).
inline float sign(float x) { return float((0.0f < x) - (x < 0.0f)); }

// max |w| over the group row (0 for an all-zero row).
inline float abs_max(const GroupIn& in) {
  float a = 0;
  for (int64_t j = 0; j < in.L; ++j) a = std::max(a, std::fabs(in.w[j]));
  return a;
}

// The MX and NV kernels' amax multiplier init_scale · β, absent factors taken as 1
// (multiplying by 1 is exact, so amax · amax_coef(in) is the reference's product bit for bit).
inline float amax_coef(const GroupIn& in) {
  if (in.has_init && in.has_beta) return in.init * in.beta;
  return in.has_init ? in.init : in.has_beta ? in.beta : 1.0f;
}

// Adds g·∂(max|w|)/∂w to gx: all of it to the first element of largest |w| (torch's CPU
// max(dim) returns the first on ties), times sign(w) (abs' backward).
inline void add_amax_grad(const GroupIn& in, float* gx, float g) {
  if (!gx) return;
  int64_t i = 0;
  for (int64_t j = 1; j < in.L; ++j)
    if (std::fabs(in.w[j]) > std::fabs(in.w[i])) i = j;
  gx[i] += g * sign(in.w[i]);
}

// Adds g·∂(amin or amax of w)/∂w to gx: split evenly among the elements equal to `extreme`
// (torch's amin/amax backward).
inline void add_extreme_grad(const GroupIn& in, float* gx, float extreme, float g) {
  if (!gx) return;
  int64_t count = 0;
  for (int64_t j = 0; j < in.L; ++j) count += in.w[j] == extreme;
  for (int64_t j = 0; j < in.L; ++j)
    if (in.w[j] == extreme) gx[j] += g / float(count);
}

// Grain for at::parallel_for over groups: about 32k elements per task.
inline int64_t grain_for(int64_t L) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(L, 1)); }

inline GroupIn group_in(const at::Tensor& wg, const Tunables& t, int64_t i) {
  GroupIn in;
  in.L = wg.size(1);
  in.w = wg.data_ptr<float>() + i * in.L;
  if (t.v.defined()) in.v = t.v.data_ptr<float>() + i * in.L;
  if (t.alpha.defined()) in.alpha = t.alpha.data_ptr<float>()[i], in.has_alpha = true;
  if (t.beta.defined()) in.beta = t.beta.data_ptr<float>()[i], in.has_beta = true;
  if (t.init_scale.defined()) in.init = t.init_scale.data_ptr<float>()[i], in.has_init = true;
  return in;
}

// Holder that lets a kernel value ride in AutogradContext::saved_data.
template <class K>
struct KernelHolder : torch::CustomClassHolder {
  explicit KernelHolder(const K& k) : kernel(k) {}
  K kernel;
};

inline Tunables contiguous_detached(const Tunables& t) {
  auto c = [](const at::Tensor& x) { return x.defined() ? x.detach().contiguous() : x; };
  return Tunables{c(t.v), c(t.alpha), c(t.beta), c(t.init_scale)};
}

// Forward over all groups: returns {w_hat [N, L], scale [N], zp [N]}.
template <class K>
std::vector<at::Tensor> run_forward(const K& k, const at::Tensor& wg, const Tunables& t) {
  const int64_t n = wg.size(0), L = wg.size(1);
  auto w_hat = at::empty_like(wg);
  auto scale = at::empty({n}, wg.options());
  auto zp = at::zeros({n}, wg.options());
  float* out = w_hat.data_ptr<float>();
  float* ps = scale.data_ptr<float>();
  float* pz = zp.data_ptr<float>();
  at::parallel_for(0, n, grain_for(L), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) k.forward(group_in(wg, t, i), out + i * L, ps[i], pz[i]);
  });
  return {w_hat, scale, zp};
}

// Backward over all groups: returns {grad_v [N, L] or undefined, grad_alpha [N], grad_beta [N],
// grad_w [N, L] or undefined}.
template <class K>
std::vector<at::Tensor> run_backward(const K& k, const at::Tensor& wg, const Tunables& t,
                                     const at::Tensor& grad, bool want_v, bool want_w) {
  const int64_t n = wg.size(0), L = wg.size(1);
  auto g = grad.contiguous();
  at::Tensor gv = want_v ? at::empty_like(wg) : at::Tensor();
  at::Tensor gx = want_w ? at::empty_like(wg) : at::Tensor();
  auto ga = at::zeros({n}, wg.options());
  auto gb = at::zeros({n}, wg.options());
  const float* pg = g.data_ptr<float>();
  float* pgv = want_v ? gv.data_ptr<float>() : nullptr;
  float* pgx = want_w ? gx.data_ptr<float>() : nullptr;
  float* pa = ga.data_ptr<float>();
  float* pb = gb.data_ptr<float>();
  at::parallel_for(0, n, grain_for(L), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      k.backward(group_in(wg, t, i), pg + i * L, pgv ? pgv + i * L : nullptr,
                 pgx ? pgx + i * L : nullptr, pa[i], pb[i]);
  });
  return {gv, ga, gb, gx};
}

// The autograd Function around a kernel. Inputs: the grouped weight [N, L] (differentiable when
// it requires grad: activations), then v, alpha, beta (tunable) and init_scale (constant).
// Outputs: w_hat [N, L] (differentiable), scale and zp (non-differentiable).
template <class K>
struct FusedQdqFunction : torch::autograd::Function<FusedQdqFunction<K>> {
  using Ctx = torch::autograd::AutogradContext;
  using List = torch::autograd::variable_list;
  using Opt = c10::optional<at::Tensor>;

  static List forward(Ctx* ctx, const at::Tensor& wg, const Opt& v, const Opt& alpha,
                      const Opt& beta, const Opt& init, K kernel) {
    auto val = [](const Opt& o) { return o.has_value() ? *o : at::Tensor(); };
    Tunables t = contiguous_detached({val(v), val(alpha), val(beta), val(init)});
    auto w = wg.detach().contiguous();
    auto outs = run_forward(kernel, w, t);
    ctx->save_for_backward({w, t.v, t.alpha, t.beta, t.init_scale});
    ctx->saved_data["kernel"] = c10::IValue::make_capsule(c10::make_intrusive<KernelHolder<K>>(kernel));
    ctx->saved_data["want_w"] = wg.requires_grad();
    ctx->mark_non_differentiable({outs[1], outs[2]});
    return outs;
  }

  static List backward(Ctx* ctx, List grads) {
    auto saved = ctx->get_saved_variables();
    auto holder = c10::static_intrusive_pointer_cast<KernelHolder<K>>(
        ctx->saved_data["kernel"].toCapsule());
    Tunables t{saved[1], saved[2], saved[3], saved[4]};
    List out(6);
    if (!grads[0].defined()) return out;
    const bool want_w = ctx->saved_data["want_w"].toBool();
    auto r = run_backward(holder->kernel, saved[0], t, grads[0], t.v.defined(), want_w);
    if (want_w) out[0] = r[3];
    if (t.v.defined()) out[1] = r[0];
    if (t.alpha.defined()) out[2] = r[1];
    if (t.beta.defined()) out[3] = r[2];
    return out;
  }
};

// Runs kernel k over the grouped weight wg [N, L] with tunables t through the autograd Function.
// REQUIRES: fused_eligible(wg, t); wg fp32 [N, L]; t checked with check_tunables.
template <class K>
std::vector<at::Tensor> apply(const K& k, const at::Tensor& wg, const Tunables& t) {
  auto opt = [](const at::Tensor& x) { return x.defined() ? c10::optional<at::Tensor>(x) : c10::nullopt; };
  return FusedQdqFunction<K>::apply(wg, opt(t.v), opt(t.alpha), opt(t.beta), opt(t.init_scale), k);
}

}  // namespace sr::fused
