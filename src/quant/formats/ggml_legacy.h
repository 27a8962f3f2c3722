// ggml's legacy block formats: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (ggml-common.h).
//
// Every block holds 32 consecutive elements of a row. All multi-byte fields are
// little-endian; "fp16" is IEEE binary16 (common/half.h converts it bit exactly).
// A block's element e (0..31) has an unsigned code c_e:
//
//   type  bytes bpw  layout (byte offsets)                       value of element e
//   Q4_0  18    4.5  d:fp16 @0, qs[16] @2                          d * (c_e - 8)
//   Q4_1  20    5.0  d:fp16 @0, m:fp16 @2, qs[16] @4               d * c_e + m
//   Q5_0  22    5.5  d:fp16 @0, qh[4] @2, qs[16] @6                d * (c_e - 16)
//   Q5_1  24    6.0  d:fp16 @0, m:fp16 @2, qh[4] @4, qs[16] @8     d * c_e + m
//   Q8_0  34    8.5  d:fp16 @0, qs[32]:int8 @2                     d * qs[e]
//
// Nibble order (Q4_*, Q5_*): qs[j] holds element j in its low nibble and element
// j+16 in its high nibble (j = 0..15): the two halves of the block, not neighbours.
// Q5_*: the 5th bit of element e is bit e of the little-endian uint32 qh.
// Decoding multiplies in fp32 exactly as written above (d and m widened from fp16,
// code as an integer converted to float), which is what dequantize_row_* does.
//
// Encoders (bit-identical to llama.cpp c392e50, see docs/formats-ggml.md):
//   *_ref       quantize_row_*_ref, used by llama-quantize without an imatrix:
//               Q4_0/Q5_0: d = signed absmax / -8 (/-16) in fp32; codes from x * (1/d)
//               rounded half up; Q4_1/Q5_1: d = (max-min)/15 (/31), m = min; Q8_0:
//               d = absmax/127, codes roundf(x/d) (half away from zero). The codes are
//               rounded against the fp32 d/m, before d/m are stored as fp16.
//   *_weighted  llama.cpp's imatrix path (quantize_row_*_impl): per-block scale
//               searches weighted by weights[e] * sqrt(sigma2 + x_e^2), sigma2 the mean
//               square of the whole row. Q8_0 has no such path (llama.cpp ignores
//               the weights), so its weighted encoder is the ref one.
//
// Shapes: x, y are [n] floats; blocks are [n/32]. REQUIRES: n % 32 == 0 (checked by
// the callers in ggml_types; these functions assume it).
#pragma once
#include <cstdint>

namespace sr {

constexpr int kQkLegacy = 32;  // elements per legacy block

struct BlockQ4_0 {
  uint16_t d;       // fp16 scale
  uint8_t qs[16];   // 4-bit codes, see nibble order above
};
static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 block is 2 + 16 bytes");

struct BlockQ4_1 {
  uint16_t d;       // fp16 scale
  uint16_t m;       // fp16 offset (the block minimum), added after scaling
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ4_1) == 20, "Q4_1 block is 2 + 2 + 16 bytes");

struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];    // 5th bits, little-endian uint32, bit e = element e
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ5_0) == 22, "Q5_0 block is 2 + 4 + 16 bytes");

struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ5_1) == 24, "Q5_1 block is 2 + 2 + 4 + 16 bytes");

struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];    // signed codes, element order
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block is 2 + 32 bytes");

// The codec and frozen-parameter hooks of the legacy type with block Block, `Bits`-bit codes
// and, for Q4_1/Q5_1, a minimum (Asym), in the type-erased signatures of its traits row
// (ggml_types.h: blocks are byte buffers). Instantiated in ggml_legacy.cpp for the five types.
template <typename Block, int Bits, bool Asym>
struct LegacyCodec {
  static void quantize_row_ref(const float* x, void* blocks, int64_t n);
  // One tensor row; weights [n] non-null (see the header comment). Q8_0: the ref encoder.
  static void quantize_row_weighted(const float* x, void* blocks, int64_t n, const float* weights);
  // The 32 unsigned codes of one block, in element order (Q8_0: the int8 code plus 128).
  // pack writes only the code bits (qs, qh); d and m are untouched.
  static void unpack(const uint8_t* block, uint8_t* codes);
  static void pack(const uint8_t* codes, uint8_t* block);
  // The block's scale d and min (-m; 0 for the symmetric types).
  static void decode(const uint8_t* block, float* scale, float* min);
  // The ref encoder's fp32 block parameters (Q4_0/Q5_0: d = signed absmax / -2^(bits-1);
  // Q8_0: absmax / 127; Q4_1/Q5_1: d = (max - min) / (2^bits - 1), min = block minimum)
  // and its rounding rule for one element x with offset v (see ggml_types.h ref_code).
  static void ref_params(const float* xb, float* d, float* min);
  static int ref_code(float x, float v, float d, float min);
};

}  // namespace sr
