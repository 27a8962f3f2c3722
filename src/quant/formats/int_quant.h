// INT weight (and activation) quantization, 2-8 bits, symmetric "full range" or asymmetric,
// with a scale (and zero point) per group. Spec: signround-algorithm.md §1.1, §1.2, §3.3.1, §3.4;
// auto-round data_type/int.py (int_asym, int_sym, opt_rtn_int_sym).
//
// Block layout: groups of G along the input dim (G > 0; padded with zeros when I % G != 0,
//   §0.1), one group per row (G = -1, or I < G), or one group for the tensor (G = 0).
// Element encoding: unsigned code c in [0, 2^b - 1], value = s · (c - z).
//   asym: z = zp per group in [0, 2^b - 1];   sym: z = 2^(b-1) (nmax) for every group, so the
//   signed level q = c - nmax lies in [-nmax, nmax - 1] (all 2^b levels used).
// Scale encoding: one scale per group, rounded to fp16 INSIDE the qdq (auto-round scale_dtype,
//   §0.4) and floored in magnitude at q_scale_thresh = fp16(1e-5) (fp32 scales: 1e-8).
//   ⚠ sym scales are SIGNED: negative when the group's positive extreme dominates, so that
//   the dominant extreme lands on the extra negative level -nmax.
// Bits per weight: b + (16 + b)/G for either sym or asym as auto-round counts it (§4.3).
// Rounding: round half to even everywhere (scale to fp16, zero point, codes).
//
// qdq, asym (§1.1), per group w[L], with maxq = 2^b - 1:
//   wmin = min(min(w), 0)·α   wmax = max(max(w), 0)·β
//   s = max(fp16((wmax - wmin)/maxq), thresh);   zp = rne(-wmin/s)
//   q = clamp(rne(w/s + v) + zp, 0, maxq);       ŵ = s·(q - zp)
// qdq, sym (§1.2), nmax = 2^(b-1):
//   a = -min(min(w),0)·α   c = max(max(w),0)·β   m = (c < a) ? a : -c
//   s = fp16(m/nmax)   — or, in init-scale mode (v2, opt-RTN), s = fp16(init_scale·β), α ignored
//   s = (s < 0) ? min(s, -thresh) : max(s, thresh)        (s == 0 gives +thresh)
//   q = clamp(rne(w/s + v), -nmax, nmax - 1);             ŵ = s·q
//
// Gradient contract (straight-through, spec §0.2; every rne and the fp16 cast are identity in
// the backward pass, every clamp has zero gradient outside its range, ends included in range):
//   ∂ŵ/∂v = s where the code is inside [0, maxq] (sym: [-nmax, nmax-1]), 0 where clamped.
//   ∂ŵ/∂s = (q - zp) - [inside]·w/s (plus the zero-point path for asym: zp = rne(-wmin/s)
//   passes -wmin/s's gradient); s's gradient is 0 when the magnitude floor is active.
//   α, β receive it through wmin = wmin0·α, wmax = wmax0·β (sym: through whichever of a, c
//   set m; init-scale mode: through s = init·β only).
//   ∂ŵ/∂w (activations; both paths): 1 inside the range (w/s then ·s), plus the path through
//   the group's min/max (amin/amax: split evenly among ties) into s and zp.
// One deliberate difference from auto-round: the scale's gradient is kept in fp32 (auto-round
// passes it through an fp16 tensor, rounding it and flushing tiny values to 0) — see
// docs/decisions.md "Quantization formats".
#pragma once
#include "quant/formats/group.h"

namespace sr::int_quant {

struct Format {
  int bits = 4;              // 2..8
  bool sym = true;           // full-range symmetric (signed scale) or asymmetric with zero point
  int64_t group_size = 128;  // G: > 0, -1 per row, 0 per tensor
  bool scale_fp16 = true;    // round scales to fp16 inside the qdq (auto-round default)
};

// The scale magnitude floor: fp16(1e-5) with fp16 scales, 1e-8 with fp32 scales.
float scale_floor(const Format& f);

// Quantize-dequantize w [O, I] (any float dtype; computed in fp32). Tunables as in group.h;
// alpha is ignored when sym and init_scale is given. Returns ŵ [O, I] fp32, scale [N], zp [N]
// (sym: filled with nmax). Uses the fused CPU kernel when fused_eligible(), else the reference.
QdqResult qdq(const at::Tensor& w, const Format& f, const Tunables& t = {});
// The composed-ops reference (autograd through ste(); any device). Defines the numbers.
QdqResult qdq_reference(const at::Tensor& w, const Format& f, const Tunables& t = {});
// The fused CPU path. REQUIRES: fused_eligible(w, t).
QdqResult qdq_fused(const at::Tensor& w, const Format& f, const Tunables& t = {});

// Codes and scales of the qdq above (no gradient): codes [O, I] uint8 in [0, 2^b-1],
// scales [O, C] fp16 (fp32 when !scale_fp16), zeros [O, C] uint8 holding the TRUE zero point
// (sym: nmax; the GPTQ packing's "zp - 1" convention of §5.1 is export's business).
Encoded encode(const at::Tensor& w, const Format& f, const Tunables& t = {});
// s·(code - zero) as fp32 [O, I]; equals qdq(w).w_hat bit for bit for e = encode(w).
// REQUIRES: e.codes, e.scales, e.zeros shaped as encode() makes them for f (else sr::Error).
at::Tensor decode(const Encoded& e, const Format& f);

// §3.3.1 initial-scale search for sym INT on the grouped weight wg [N, L] weighted by
// importance [N, L] (imatrix_to_groups; ones when no imatrix): per group the signed scale
// 1/iscale_k minimising Σ q·(s_k·clamp(rne(iscale_k·w), -nmax, nmax-1) - w)² over the baseline
// iscale = -nmax/gmax and iscale_k = -(nmax - step·k)/gmax, k in [-K, K]\{0} (b = 2: K = 90,
// step 0.01; else K = 100, step = 1.5·nmax/200). Strictly lower loss wins; ties keep the
// earlier candidate (baseline, then k ascending). Result [N] fp32, |s| >= 1e-5 keeping the
// sign; an all-zero group gives +1e-5. Fused CPU loop when wg is on the CPU.
at::Tensor search_init_scale(const at::Tensor& wg, const Format& f, const at::Tensor& importance);
// The same search with composed torch ops (any device); reference for the test.
at::Tensor search_init_scale_reference(const at::Tensor& wg, const Format& f,
                                       const at::Tensor& importance);

}  // namespace sr::int_quant
