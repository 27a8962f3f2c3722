// ggml's k-quant super-blocks: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (ggml-common.h).
//
// A super-block holds 256 consecutive elements of a row (QK_K), split into
// sub-blocks of 16 or 32 elements that each get a small integer scale (and, for the
// asymmetric types, an integer min) which is itself scaled by the fp16 super-block
// factors d (and dmin). "fp16" is IEEE binary16; fields are little-endian.
//
//   type  bytes bpw     sub-block  per sub-block g                 value of element e
//   Q2_K   84   2.625   16 x 16    sc_g, m_g: 4 bits each          d*sc_g * c_e - dmin*m_g   c in [0,3]
//   Q3_K  110   3.4375  16 x 16    sc_g: 6 bits, biased by 32      d*(sc_g-32) * (c_e - 4)   c in [0,7]
//   Q4_K  144   4.5      8 x 32    sc_g, m_g: 6 bits each          d*sc_g * c_e - dmin*m_g   c in [0,15]
//   Q5_K  176   5.5      8 x 32    sc_g, m_g: 6 bits each          d*sc_g * c_e - dmin*m_g   c in [0,31]
//   Q6_K  210   6.5625  16 x 16    sc_g: int8                      d*sc_g * (c_e - 32)       c in [0,63]
//
// Byte layouts (offsets in bytes, e = element index 0..255, g = e / sub-block size):
//   Q2_K  scales[16] @0: low nibble sc_g, high nibble m_g.   qs[64] @16.   d @80, dmin @82.
//         2-bit codes: element e = 128h + 32s + l (h half, s 0..3, l 0..31) sits in
//         bits 2s..2s+1 of qs[32h + l].
//   Q3_K  hmask[32] @0, qs[64] @32, scales[12] @96, d @108.
//         low 2 bits of c_e as in Q2_K (qs); the high bit (4) of c_e is bit e/32 of
//         hmask[e % 32]. 6-bit scale g: low 4 bits in the low nibble of scales[g]
//         (g < 8) or the high nibble of scales[g-8] (g >= 8); top 2 bits in bits
//         2*(g/4)..+1 of scales[8 + g%4].
//   Q4_K  d @0, dmin @2, scales[12] @4, qs[128] @16.
//   Q5_K  d @0, dmin @2, scales[12] @4, qh[32] @16, qs[128] @48.
//         (Q4_K/Q5_K) 6-bit sc_g/m_g: g < 4: sc = scales[g] & 63, m = scales[g+4] & 63;
//         g >= 4: sc = (scales[g+4] & 15) | (scales[g-4] >> 6) << 4,
//                 m  = (scales[g+4] >> 4) | (scales[g] >> 6) << 4.
//         Low 4 bits: element 64k + l (l < 32) in the low nibble of qs[32k + l],
//         element 64k + 32 + l in its high nibble (k = 0..3).
//         Q5_K high bit (16): element 64k + l -> bit 2k of qh[l]; 64k + 32 + l -> bit 2k+1.
//   Q6_K  ql[128] @0, qh[64] @128, scales[16]:int8 @192, d @208.
//         In half h (elements 128h..128h+127, ql[64h..], qh[32h..]), l = 0..31:
//         element 128h + 32r + l takes its low 4 bits from ql[64h + 32(r%2) + l]
//         (low nibble for r < 2, high nibble for r >= 2) and its top 2 bits from
//         bits 2r..2r+1 of qh[32h + l].
//
// Decoding computes exactly the products written above in fp32, left to right
// (d*sc first, then times the code), as ggml's dequantize_row_* does.
//
// Encoders (bit-identical to llama.cpp c392e50, details in docs/formats-ggml.md):
//   *_ref       quantize_row_*_ref (llama-quantize without imatrix): per sub-block
//               scale (and min) search, then the sub-block scales are quantized with
//               one fp16 factor per super-block, then every element is re-rounded
//               against the stored (double-quantized) scale: c = nearest((x + min)/scale).
//   *_weighted  quantize_row_*_impl with quant_weights (the imatrix path); the same
//               structure with importance-weighted searches (make_qkx3/qp/qx_quants).
//
// The encoders here take ONE super-block, x [256] (and its weights [256], non-null for
// the weighted ones): no k-quant statistic spans more than a super-block, so ggml_types
// runs them block by block along a row.
#pragma once
#include <cstdint>

namespace sr {

constexpr int kQkK = 256;  // elements per k-quant super-block

struct BlockQ2_K {
  uint8_t scales[16];  // low nibble: scale code, high nibble: min code (per 16 elements)
  uint8_t qs[64];      // 2-bit codes
  uint16_t d;          // fp16 factor of the scale codes
  uint16_t dmin;       // fp16 factor of the min codes
};
static_assert(sizeof(BlockQ2_K) == 84, "Q2_K block is 16 + 64 + 2 + 2 bytes");

struct BlockQ3_K {
  uint8_t hmask[32];   // high bit of the 3-bit codes
  uint8_t qs[64];      // low 2 bits
  uint8_t scales[12];  // 16 six-bit scale codes, biased by 32
  uint16_t d;          // fp16 factor of the scale codes
};
static_assert(sizeof(BlockQ3_K) == 110, "Q3_K block is 32 + 64 + 12 + 2 bytes");

struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];  // 8 six-bit scale codes and 8 six-bit min codes
  uint8_t qs[128];     // 4-bit codes
};
static_assert(sizeof(BlockQ4_K) == 144, "Q4_K block is 2 + 2 + 12 + 128 bytes");

struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[32];      // 5th bits
  uint8_t qs[128];     // low 4 bits
};
static_assert(sizeof(BlockQ5_K) == 176, "Q5_K block is 2 + 2 + 12 + 32 + 128 bytes");

struct BlockQ6_K {
  uint8_t ql[128];     // low 4 bits
  uint8_t qh[64];      // top 2 bits
  int8_t scales[16];   // signed scale codes (per 16 elements)
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210, "Q6_K block is 128 + 64 + 16 + 2 bytes");

void quantize_block_q2_K_ref(const float* x, BlockQ2_K* y);
void quantize_block_q3_K_ref(const float* x, BlockQ3_K* y);
void quantize_block_q4_K_ref(const float* x, BlockQ4_K* y);
void quantize_block_q5_K_ref(const float* x, BlockQ5_K* y);
void quantize_block_q6_K_ref(const float* x, BlockQ6_K* y);

void quantize_block_q2_K_weighted(const float* x, BlockQ2_K* y, const float* weights);
void quantize_block_q3_K_weighted(const float* x, BlockQ3_K* y, const float* weights);
void quantize_block_q4_K_weighted(const float* x, BlockQ4_K* y, const float* weights);
void quantize_block_q5_K_weighted(const float* x, BlockQ5_K* y, const float* weights);
void quantize_block_q6_K_weighted(const float* x, BlockQ6_K* y, const float* weights);

// Pack/unpack the 256 unsigned codes c_e of one super-block in element order
// (ranges in the table above). pack writes only the code bits (qs, qh, hmask, ql);
// d, dmin and the scale bytes are untouched.
void unpack_codes_q2_K(const BlockQ2_K& b, uint8_t* codes);
void unpack_codes_q3_K(const BlockQ3_K& b, uint8_t* codes);
void unpack_codes_q4_K(const BlockQ4_K& b, uint8_t* codes);
void unpack_codes_q5_K(const BlockQ5_K& b, uint8_t* codes);
void unpack_codes_q6_K(const BlockQ6_K& b, uint8_t* codes);
void pack_codes_q2_K(const uint8_t* codes, BlockQ2_K* b);
void pack_codes_q3_K(const uint8_t* codes, BlockQ3_K* b);
void pack_codes_q4_K(const uint8_t* codes, BlockQ4_K* b);
void pack_codes_q5_K(const uint8_t* codes, BlockQ5_K* b);
void pack_codes_q6_K(const uint8_t* codes, BlockQ6_K* b);

// Effective per-sub-block parameters of one super-block, computed with the same
// float operations as decoding: scale[g] = d * sc_g, min[g] = dmin * m_g (0 for the
// symmetric Q3_K/Q6_K), so that element e decodes to scale*q - min with
// q = c_e (asym) or c_e - 4 / c_e - 32 (sym). scale/min are [16] or [8].
void block_params_q2_K(const BlockQ2_K& b, float* scale, float* min);
void block_params_q3_K(const BlockQ3_K& b, float* scale, float* min);
void block_params_q4_K(const BlockQ4_K& b, float* scale, float* min);
void block_params_q5_K(const BlockQ5_K& b, float* scale, float* min);
void block_params_q6_K(const BlockQ6_K& b, float* scale, float* min);

}  // namespace sr
