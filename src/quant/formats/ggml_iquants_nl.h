// ggml's non-linear 4-bit i-quants: IQ4_NL and IQ4_XS (ggml-common.h, llama.cpp c392e50).
//
// Both store, per element, a 4-bit index c into one fixed table of 16 signed values
// (kIq4nlValues, ggml's kvalues_iq4nl: denser near 0, like the quantiles of a bell curve),
// scaled per 32-element sub-block. "fp16" is IEEE binary16; fields are little-endian.
//
//   type    bytes bpw   block      per 32-element sub-block g        value of element e
//   IQ4_NL   18   4.5    32        the block's fp16 d                 d * kIq4nlValues[c_e]
//   IQ4_XS  136   4.25  256 (8x32) ls_g: 6 bits, biased by 32         (d * (ls_g - 32)) * kIq4nlValues[c_e]
//
// Byte layouts (offsets in bytes):
//   IQ4_NL  d @0, qs[16] @2.
//   IQ4_XS  d @0, scales_h:uint16 @2, scales_l[4] @4, qs[128] @8.
//           ls_g: low 4 bits in nibble g%2 of scales_l[g/2] (low nibble for even g), top
//           2 bits in bits 2g..2g+1 of scales_h.
//   Nibble order (both; the same as Q4_0): within 32-element sub-block g, qs[16g + j] holds
//   element 32g + j in its low nibble and element 32g + 16 + j in its high nibble.
// Decoding computes exactly the products written above in fp32 (IQ4_XS: d * (ls - 32) first,
// then times the table value), as ggml's dequantize_row_iq4_nl / iq4_xs do.
//
// Encoders (bit-identical to llama.cpp c392e50's quantize_iq4_nl / quantize_iq4_xs, one
// routine, quantize_row_iq4_nl_impl, for both):
//   per sub-block b of 32: importance w_e = qw_e * sqrt(sigma2 + x_e^2) with an imatrix
//   (sigma2 = 2 * mean x^2 over the super-block: 32 elements for IQ4_NL, 256 for IQ4_XS),
//   else w_e = x_e^2. Start from d = max / -127 (max: the signed largest-magnitude
//   element), index every element to the nearest table value of x/d (ties to the upper
//   index), d = sum(w q x) / sum(w q^2); then try the 15 inverse scales (t - 127)/max,
//   t = -7..7, keeping the d that maximises (sum w q x)^2 / sum w q^2.
//   IQ4_NL: d stored as fp16, then the indices re-chosen against the fp32 d.
//   IQ4_XS: d_super = -(signed largest-magnitude sub-block d) / 32 as fp16; ls_g =
//   clamp(nearest(d_g / d_super), -32, 31) + 32; indices re-chosen against the fp32
//   d_super * (ls_g - 32). Sub-blocks with |x| < 1e-15 get d = 0 and index 8 (value 1).
//   Without an imatrix (quantize_row_*_ref, llama-quantize's path) the same with w = x^2.
//
// Shapes: x, weights [n]; n a multiple of the block size (32 / 256; the callers in
// ggml_types check it). weights is per-column importance (an imatrix row), non-null.
#pragma once
#include <cstdint>

namespace sr {

constexpr int kQkIq4Nl = 32;  // elements per IQ4_NL block and per IQ4_XS sub-block

// ggml's kvalues_iq4nl: the 16 reconstruction levels, ascending.
extern const int8_t kIq4nlValues[16];

struct BlockIQ4_NL {
  uint16_t d;       // fp16 scale
  uint8_t qs[16];   // 4-bit table indices, nibble order above
};
static_assert(sizeof(BlockIQ4_NL) == 18, "IQ4_NL block is 2 + 16 bytes");

struct BlockIQ4_XS {
  uint16_t d;            // fp16 super-block scale
  uint16_t scales_h;     // top 2 bits of the 8 six-bit sub-block scales
  uint8_t scales_l[4];   // low 4 bits of the 8 sub-block scales
  uint8_t qs[128];       // 4-bit table indices
};
static_assert(sizeof(BlockIQ4_XS) == 136, "IQ4_XS block is 2 + 2 + 4 + 128 bytes");

// ggml's best_index_int8 over kIq4nlValues: the index of the table value nearest to x
// (x <= -127: 0; x >= 113: 15; a tie between two values: the upper one).
int iq4nl_nearest_index(float x);

void dequantize_row_iq4_nl(const void* blocks, float* y, int64_t n);
void dequantize_row_iq4_xs(const void* blocks, float* y, int64_t n);

void quantize_row_iq4_nl_ref(const float* x, void* blocks, int64_t n);
void quantize_row_iq4_xs_ref(const float* x, void* blocks, int64_t n);
void quantize_row_iq4_nl_weighted(const float* x, void* blocks, int64_t n, const float* weights);
void quantize_row_iq4_xs_weighted(const float* x, void* blocks, int64_t n, const float* weights);

// The effective scale of each 32-element sub-block, with decoding's fp32 operations:
// IQ4_NL d (one per block), IQ4_XS d * (ls_g - 32) (8 per block). scale [n / 32].
void iq4_row_scales(bool xs, const void* blocks, int64_t n, float* scale);
// The 4-bit indices c_e of a row, in element order. codes [n].
void iq4_unpack_row(bool xs, const void* blocks, int64_t n, uint8_t* codes);
// Rewrites only the index nibbles of a row (scales untouched). codes [n], each < 16.
void iq4_pack_row(bool xs, const uint8_t* codes, void* blocks, int64_t n);

// ---- frozen scales, tunable rounding (SignRound on IQ4, issue 16 part 4) ----------------------
//
// The rounding of IQ4 is "nearest table level". SignRound's offset v generalises to it in the
// table's index coordinate: with s the sub-block's stored scale (iq4_row_scales) and
//   t(u) = i + (u - L_i) / (L_{i+1} - L_i)   for L_i <= u <= L_{i+1}   (L = kIq4nlValues),
// extended linearly past the ends with the end segments' slopes, an element x gets
//   c = clamp(floor(t(x / s) + v + 1/2), 0, 15),   x_hat = s * L_c.
// Midpoints between levels map to i + 1/2, so v = 0 is nearest-level rounding (ties to the
// upper level, as iq4nl_nearest_index) and |v| <= 1/2 moves a code at most one level, as for
// INT. Straight-through gradients (the projection onto the table passes the gradient):
//   d x_hat / d v = s * (L_{j+1} - L_j), j the segment holding t + v (j <= 14), where the
//   unclamped code lies in [0, 15]; 0 where it is clamped or s = 0.
//   d x_hat / d x = 1 where d x_hat / d v != 0, else 0.
// Sub-blocks with s = 0 keep the codes of `blocks`. ggml_frozen.h's search / encode / qdq call
// these for IQ4_NL and IQ4_XS (GgmlRowParams: group 32, min 0, codes 0..15).

// The index coordinate t(u) above.
float iq4nl_index_coord(float u);

// x_hat [n] (and dv [n] if non-null) for a row of x [n] with offsets v [n] (nullptr = 0),
// against the scales stored in `blocks` (a row of IQ4_NL or IQ4_XS blocks, xs selects).
void iq4_qdq_row_frozen(bool xs, const void* blocks, const float* x, const float* v, int64_t n, float* x_hat,
                        float* dv);
// Rewrites the index nibbles of `blocks` with the codes iq4_qdq_row_frozen rounds to (the
// scales stay), so that decoding gives its x_hat bit for bit.
// Both throw sr::Error if an x or v of a sub-block with s != 0 (one whose codes are set) is not
// finite.
void iq4_encode_row_frozen(bool xs, void* blocks, const float* x, const float* v, int64_t n);

}  // namespace sr
