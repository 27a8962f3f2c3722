// NVFP4: FP4 E2M1 elements, an FP8 E4M3 scale per 16-element block, and an fp32 global scale
// per tensor (two-level scaling). Spec: signround-algorithm.md §1.4, §3.3.3, §5.2;
// auto-round data_type/nvfp.py (nv_fp4, ref_nvfp4_quant, nv_fp4_with_static_gs).
//
// Block layout: 16 consecutive elements along the input dim (G = 16, asserted by auto-round;
//   layers with I % 16 != 0 stay in 16 bit, QuantScheme::fits).
// Element encoding: E2M1 code (sign<<3 | index into {0,.5,1,1.5,2,3,4,6}), one per byte in
//   Encoded.codes (export packs two per byte, §5.2).
// Scale encoding: block scale sb as an E4M3 byte; global scale gs fp32 [1].
//   Bits per weight: 4 + 8/16 = 4.5 (the global scale is not counted, §4.3).
// qdq (exact fp32 operation order of ref_nvfp4_quant; recip(x) = 0 for x == 0, else 1/x):
//   gs = 2688 · recip(amax|W|)        (448·6; per layer, or the fused min over q/k/v, gate/up)
//   m  = max|block| · (β · init_scale)
//   sb = e4m3(clamp(gs · (m · fp32(1/6)), -448, 448))          (RNE, straight-through)
//   k  = recip(sb · recip(gs))                                  (= gs/sb up to rounding)
//   x  = clamp(w·k + v, -6, 6);   f = RNE of x on the E2M1 grid (zero keeps x's sign unless
//   x is ±0);   ŵ = f · recip(k)
//   Decoding uses the same f·recip(recip(sb·recip(gs))) so that decode(encode(w)) == ŵ bit
//   for bit; it can differ from f·sb/gs in the last bit.
//
// Gradient contract: ∂ŵ/∂v = recip(k) where -6 <= x <= 6 and x != 0, else 0 (cast_to_fp4's
// slope is sign(x)² ). β gets the gradient through k (both in x = w·k and in ŵ = f·recip(k)),
// then through the E4M3 cast (straight-through) and the ±448 clamp into m. An all-zero block
// (k = 0) gives zero gradient (auto-round: NaN, docs/decisions.md). No gradient to gs.
// ∂ŵ/∂w (activations): k·recip(k) (≈ 1) where -6 <= x <= 6 and x != 0 directly, plus the path
// through sb into the block's max |w| (to its first element of largest magnitude).
#pragma once
#include "quant/formats/group.h"

namespace sr::nvfp {

struct Format {
  int64_t group_size = 16;  // must be 16
};

// gs = 2688 · recip(max|w|) as fp32 [1] (0 for an all-zero w). No gradient.
at::Tensor global_scale(const at::Tensor& w);
// The shared global scale of fused layers (q/k/v, gate/up): the elementwise min (§1.4).
// REQUIRES: at least one tensor, each with one element.
at::Tensor fuse_global_scales(at::TensorList scales);

// Quantize-dequantize w [O, I] with global scale gs (fp32, one element; undefined: computed
// from w). Tunables: v, beta, init_scale (alpha ignored). Returns ŵ [O, I], scale [N] = sb
// (fp32 holding E4M3 values), zp undefined. Fused on CPU when eligible.
QdqResult qdq(const at::Tensor& w, const Format& f, const Tunables& t = {},
              const at::Tensor& gs = {});
// The composed-ops reference (autograd through ste(); any device; gradients to w too).
QdqResult qdq_reference(const at::Tensor& w, const Format& f, const Tunables& t = {},
                        const at::Tensor& gs = {});
// The fused CPU kernel, bit-identical forward. REQUIRES: fused_eligible(w, t).
QdqResult qdq_fused(const at::Tensor& w, const Format& f, const Tunables& t = {},
                    const at::Tensor& gs = {});

// Activation qdq with a static global scale from a calibrated act_max (nv_fp4_with_static_gs):
// gs = 2688·recip(act_max); act_max undefined means the tensor's own max (dynamic). x [.., I].
at::Tensor qdq_act(const at::Tensor& x, const Format& f, const at::Tensor& act_max = {});

// codes [O, I] uint8 E2M1, scales [O, C] uint8 E4M3 bytes, global_scale [1] fp32. No gradient.
Encoded encode(const at::Tensor& w, const Format& f, const Tunables& t = {},
               const at::Tensor& gs = {});
// f·recip(recip(sb·recip(gs))) as fp32 [O, I]; decode(encode(w)) == qdq(w).w_hat bit for bit.
// REQUIRES: codes, scales and global_scale as encode() makes them (else sr::Error).
at::Tensor decode(const Encoded& e, const Format& f);

// §3.3.3: per block, the amax multiplier among 1.0 (baseline) then 0.50, 0.51, ..., 1.51
// (without 1.00) minimising Σ importance·(ŵ - w)² with gs from wg alone (strictly lower wins).
// wg, importance [N, 16]. Returns [N]. A CPU loop over blocks when wg is on the CPU.
at::Tensor search_init_scale(const at::Tensor& wg, const Format& f, const at::Tensor& importance);
// The same search through full composed qdq calls (any device); reference for the test.
at::Tensor search_init_scale_reference(const at::Tensor& wg, const Format& f,
                                       const at::Tensor& importance);

}  // namespace sr::nvfp
