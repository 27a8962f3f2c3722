// MX (OCP Microscaling v1.0) formats MXFP4 and MXFP8: FP elements sharing one power-of-two
// scale per block. Spec: signround-algorithm.md §1.3, §3.3.2; auto-round data_type/mxfp.py.
//
// Block layout: 32 consecutive elements along the input dim (group_size G, default 32; the
//   grouping rules of §0.1 apply, but layers with I % G != 0 are kept in 16 bit, QuantScheme::fits).
// Element encoding: MXFP4 = FP4 E2M1 (grid ±{0, .5, 1, 1.5, 2, 3, 4, 6}), MXFP8 = FP8 E4M3
//   (max 448, subnormals down to 2^-9); codecs in fp_codecs.h.
// Scale encoding: one E8M0 byte per block, X = 2^E with E in [-127, 127], byte = E + 127
//   (0xff = NaN is never produced). Bits per weight: 4 + 8/32 = 4.25 (MXFP4), 8.25 (MXFP8).
// Shared exponent, with amax = max|block| · (init_scale · β):
//   floor rule (OCP default):  E = clamp(floor(log2 amax) - emax_elem, -127, 127)
//                              (emax_elem = 2 for E2M1, 8 for E4M3; amax == 0 gives E = 1 - emax)
//   RCEIL rule (*_rceil):      E = clamp(ceil(log2(amax / max_norm)), -127, 127)
//                              (no element saturates; amax == 0 gives E = 1)
//   floor/ceil of log2 are EXACT here (exponent bits); auto-round's torch.log2 rounds up for
//   amax a few ulps below a power of two and then picks E one larger (docs/decisions.md).
// qdq per element:  x = clamp(w/2^E + v, -max_norm, max_norm);  t = RNE of x onto the element
//   grid (ties to even; zero keeps x's sign unless x is ±0 itself);  ŵ = t · 2^E.
//
// Gradient contract (spec formulas with their STEs, §1.3 quant_element/quant_mx):
//   ∂ŵ/∂v = 2^E · r(x) inside [-max_norm, max_norm], 0 outside, where r is the element
//   quantizer's straight-through slope: t/x when floor(log2|x|) >= the element's min normal
//   exponent (the private exponent floor_ste(log2|x|) also passes gradient), 1 in the subnormal
//   range, 0 at x == 0.
//   β (and nothing else; α is never used) gets ∂ŵ/∂E = ln2·2^E·(...) through 2^E, then
//   ∂E/∂amax = 1/(amax·ln2) (floor_ste / ceil_ste of log2), zero where E is clamped at ±127 and
//   for amax == 0 (auto-round produces NaN there; docs/decisions.md).
//   ∂ŵ/∂w (activations): r(x) directly, plus the path through E into max|block| (all of it to
//   the first element of largest magnitude, as torch's max(dim) backward routes it).
#pragma once
#include "quant/formats/group.h"

namespace sr::mxfp {

// Frozen numeric values (serialized through QuantScheme names only, but keep them stable).
enum class Element : int { E2M1 = 0, E4M3 = 1 };
enum class ScaleRule : int { Floor = 0, Rceil = 1 };

struct Format {
  Element element = Element::E2M1;
  ScaleRule rule = ScaleRule::Floor;
  int64_t group_size = 32;
};

// Shared exponent E of a block with (scaled) amax >= 0, per the rule above. Scalar reference.
int shared_exponent(float amax, const Format& f);

// Quantize-dequantize w [O, I]. Tunables: v, beta, init_scale (alpha ignored). Returns
// ŵ [O, I] fp32, scale [N] = E (integer-valued fp32), zp undefined. Fused on CPU when eligible.
QdqResult qdq(const at::Tensor& w, const Format& f, const Tunables& t = {});
// The composed-ops reference (autograd through ste(); any device; gradients to w too).
QdqResult qdq_reference(const at::Tensor& w, const Format& f, const Tunables& t = {});
// The fused CPU kernel, bit-identical forward. REQUIRES: fused_eligible(w, t).
QdqResult qdq_fused(const at::Tensor& w, const Format& f, const Tunables& t = {});

// codes [O, I] uint8 (E2M1 code in the low nibble, or the E4M3 byte), scales [O, C] uint8
// E8M0 bytes. No gradient.
Encoded encode(const at::Tensor& w, const Format& f, const Tunables& t = {});
// element · 2^E as fp32 [O, I]; decode(encode(w)) == qdq(w).w_hat bit for bit.
// REQUIRES: codes/scales shaped as encode() makes them for f (else sr::Error).
at::Tensor decode(const Encoded& e, const Format& f);

// §3.3.2: per block, the amax multiplier in {1 (baseline), 0.5, 2} whose full qdq (v = 0)
// minimises Σ importance·(ŵ - w)² (strictly lower wins). wg, importance: [N, L]. Returns [N].
at::Tensor search_init_scale(const at::Tensor& wg, const Format& f, const at::Tensor& importance);

}  // namespace sr::mxfp
