// FP8 E4M3 weights (and activations) with an fp32 scale per tensor, per row or per group.
// Spec: signround-algorithm.md §1.5; auto-round data_type/fp8.py (quant_fp8_sym).
//
// Block layout: G = 0 one scale per tensor (FPW8A16), G = -1 one per row (FP8_STATIC weights),
//   G > 0 one per group of G (padded when I % G != 0, §0.1).
// Element encoding: FP8 E4M3 "fn" byte (max 448, subnormals to 2^-9, 0x7f/0xff NaN never
//   produced). Scale encoding: fp32 per group. Bits per weight: 8 + 16/G as §4.3 counts it.
// qdq: amax = max|group| (or a static tensor_max), s = max(amax·β/448, 1/(448·512)),
//   t = e4m3(clamp(w/s + v, -448, 448)) (RNE, saturating), ŵ = t·s. Zero elements are +0.
//
// Gradient contract: ∂ŵ/∂v = s inside [-448, 448], 0 outside (the E4M3 cast is straight-
// through); β gets Σ g·(t - [inside]·w/s)·amax/448 through s, 0 when s sits on its floor.
// ∂ŵ/∂w (activations): [inside] directly, plus the path through s into max|group| (first
// element of largest magnitude) unless the max is static.
#pragma once
#include "quant/formats/group.h"

namespace sr::fp8 {

struct Format {
  int64_t group_size = -1;  // 0 per tensor, -1 per row, > 0 per group
};

// Quantize-dequantize w [O, I]. Tunables: v, beta (alpha and init_scale ignored).
// tensor_max: a static amax replacing the per-group max (one element, or [N]); undefined =
// dynamic. Returns ŵ [O, I] fp32, scale [N] fp32, zp undefined. Fused on CPU when eligible
// and tensor_max has at most one element.
QdqResult qdq(const at::Tensor& w, const Format& f, const Tunables& t = {},
              const at::Tensor& tensor_max = {});
// The composed-ops reference (autograd through ste(); any device; gradients to w too).
QdqResult qdq_reference(const at::Tensor& w, const Format& f, const Tunables& t = {},
                        const at::Tensor& tensor_max = {});
// The fused CPU kernel (dynamic scales), bit-identical forward.
// REQUIRES: fused_eligible(w, t).
QdqResult qdq_fused(const at::Tensor& w, const Format& f, const Tunables& t = {});

// codes [O, I] uint8 E4M3 bytes, scales [O, C] fp32. No gradient.
Encoded encode(const at::Tensor& w, const Format& f, const Tunables& t = {},
               const at::Tensor& tensor_max = {});
// element · s as fp32 [O, I]; decode(encode(w)) == qdq(w).w_hat bit for bit.
// REQUIRES: codes/scales shaped as encode() makes them for f (else sr::Error).
at::Tensor decode(const Encoded& e, const Format& f);

}  // namespace sr::fp8
