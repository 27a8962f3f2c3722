// Minifloat element codecs: FP4 E2M1, FP8 E4M3 ("fn" variant) and the E8M0 scale byte,
// scalar and on tensors. libtorch 1.13 has no float8 type, so every conversion is done here
// by exact bit manipulation (reading the fp32 exponent field), never with log2.
//
// FP4 E2M1 (OCP Microscaling spec v1.0 §5.3.3): 1 sign, 2 exponent (bias 1), 1 mantissa bit.
//   code = sign<<3 | index, values by index 0..7: {0, 0.5, 1, 1.5, 2, 3, 4, 6}.
//   No inf, no NaN. Max 6. Codes 0x0 and 0x8 are +0 and -0.
// FP8 E4M3 "fn" (OCP OFP8 spec): 1 sign, 4 exponent (bias 7), 3 mantissa bits.
//   exponent field 0 is subnormal (m·2^-9); 0x7f / 0xff are NaN; no inf; max normal 448
//   (0x7e), min normal 2^-6 (0x08), min subnormal 2^-9 (0x01).
// E8M0 (OCP MX scale): 8-bit biased exponent, no sign, no mantissa: byte b means 2^(b-127)
//   for b in [0, 254]; 0xff is NaN. 2^-127 is an fp32 subnormal and decodes exactly.
//
// Rounding: every narrowing conversion rounds half to even (RNE) and SATURATES: values whose
// magnitude is beyond the max (including ±inf) become ±max. This is the behaviour the qdq
// functions need (auto-round clips before its float8 casts, spec §0.2); note that a plain
// torch float8_e4m3fn cast (torch >= 2.1) does not saturate, it returns NaN past 464.
// NaN: E4M3 encodes NaN as 0x7f|sign. E2M1 has no NaN code; the scalar encoder maps NaN to
// ±6 and the tensor encoders throw on NaN (never swallow NaNs, style.md #9).
// Signed zero is preserved: -0.0 encodes as 0x8 (E2M1) / 0x80 (E4M3) and decodes to -0.0.
#pragma once
#include <cstdint>

#include "common/torch.h"

namespace sr::codec {

constexpr float kE2M1Max = 6.0f;
constexpr float kE4M3Max = 448.0f;
constexpr int kE4M3MinExp = -6;      // exponent of the smallest normal E4M3 value
constexpr int kE2M1MinExp = 0;       // exponent of the smallest normal E2M1 value (1.0)
constexpr uint8_t kE4M3NaN = 0x7f;
constexpr uint8_t kE8M0NaN = 0xff;
constexpr int kE8M0Bias = 127;
constexpr int kE8M0MinExp = -127;    // byte 0x00
constexpr int kE8M0MaxExp = 127;     // byte 0xfe

// ---------------------------------------------------------------------------------------
// Scalar codecs (the reference; header-only so fused kernels inline them).

// floor(log2(x)) exactly, from the fp32 exponent field; subnormals included.
// REQUIRES: x finite and x > 0.
int floor_log2(float x);
// ceil(log2(x)) exactly. REQUIRES: x finite and x > 0.
int ceil_log2(float x);
// 2^e exactly as an fp32 (subnormal below 2^-126). REQUIRES: -149 <= e <= 127.
float pow2(int e);
// Round half to even to an integer (std::nearbyint under the default FE_TONEAREST mode).
float rne(float x);

// Nearest E2M1 value, RNE, saturating at ±6; keeps the sign of x (so -0.2 gives -0.0).
float e2m1_round(float x);
// 4-bit code of x (RNE, saturating). NaN gives ±6's code.
uint8_t e2m1_encode(float x);
// Value of a 4-bit code. REQUIRES: code < 16.
float e2m1_decode(uint8_t code);

// Nearest E4M3 value, RNE, saturating at ±448; NaN stays NaN; keeps the sign of zero.
float e4m3_round(float x);
// E4M3 byte of x (RNE, saturating); NaN gives 0x7f|sign.
uint8_t e4m3_encode(float x);
// Value of an E4M3 byte; 0x7f and 0xff give NaN.
float e4m3_decode(uint8_t byte);

// E8M0 byte of the unbiased exponent e. REQUIRES: -127 <= e <= 127.
uint8_t e8m0_encode(int e);
// 2^(byte-127); 0xff gives NaN.
float e8m0_decode(uint8_t byte);

// ---------------------------------------------------------------------------------------
// Tensor codecs. Built from elementwise ATen ops, so they run on any device; all inputs and
// float outputs are fp32 (other float dtypes are converted first). Shapes are preserved.

// floor(log2|x|) as integer-valued fp32, exact (subnormals included); 0 gives -191
// (callers mask zeros). Inf/NaN give garbage; callers exclude them.
at::Tensor floor_log2(const at::Tensor& x);
// ceil(log2|x|), same conventions as floor_log2.
at::Tensor ceil_log2(const at::Tensor& x);
// 2^e exactly for integer-valued fp32 e in [-149, 127].
at::Tensor pow2(const at::Tensor& e);

at::Tensor e2m1_round(const at::Tensor& x);
// uint8 codes in [0, 15]. Throws sr::Error on NaN.
at::Tensor e2m1_encode(const at::Tensor& x);
// fp32 values. Throws sr::Error on codes > 15. REQUIRES: uint8 codes.
at::Tensor e2m1_decode(const at::Tensor& codes);

at::Tensor e4m3_round(const at::Tensor& x);
// uint8 bytes; NaN becomes 0x7f|sign (never produced by the qdq paths).
at::Tensor e4m3_encode(const at::Tensor& x);
// fp32 values, NaN for 0x7f/0xff. REQUIRES: uint8 bytes.
at::Tensor e4m3_decode(const at::Tensor& bytes);

// uint8 bytes from integer-valued fp32 exponents. Throws sr::Error outside [-127, 127].
at::Tensor e8m0_encode(const at::Tensor& exponents);
// fp32 2^(b-127), NaN for 0xff. REQUIRES: uint8 bytes.
at::Tensor e8m0_decode(const at::Tensor& bytes);

}  // namespace sr::codec

// ---------------------------------------------------------------------------------------
// Inline scalar implementations.
#include <cmath>

#include "common/half.h"

namespace sr::codec {

inline int floor_log2(float x) {
  uint32_t u = f32_bits(x) & 0x7fffffffu;
  int e = int(u >> 23);
  if (e != 0) return e - 127;
  // subnormal: value = m * 2^-149 with m < 2^23; floor(log2) = -149 + index of m's top bit
  int top = 31 - __builtin_clz(u);
  return -149 + top;
}

inline int ceil_log2(float x) {
  int f = floor_log2(x);
  return std::fabs(x) == pow2(f) ? f : f + 1;
}

inline float pow2(int e) {
  if (e >= -126) return f32_from_bits(uint32_t(e + 127) << 23);
  return f32_from_bits(uint32_t(1) << (e + 149));
}

inline float rne(float x) { return std::nearbyint(x); }

inline float e2m1_round(float x) {
  float a = std::fabs(x);
  float r;
  if (!(a < kE2M1Max)) r = kE2M1Max;          // saturate; NaN lands here too
  else if (a < 2.0f) r = rne(a * 2.0f) * 0.5f;  // step 0.5 (subnormal 0.5 and binade [1,2))
  else if (a < 4.0f) r = rne(a);                // step 1
  else r = rne(a * 0.5f) * 2.0f;                // step 2
  return std::copysign(r, x);
}

inline uint8_t e2m1_encode(float x) {
  float r = std::fabs(e2m1_round(x));
  // index: {0,.5,1,1.5} -> 2r; {2,3} -> r+2; {4,6} -> r/2+4
  int idx = r < 2.0f ? int(r * 2.0f) : (r < 4.0f ? int(r) + 2 : int(r * 0.5f) + 4);
  return uint8_t((std::signbit(x) ? 8 : 0) | idx);
}

inline float e2m1_decode(uint8_t code) {
  static constexpr float kValues[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  float v = kValues[code & 7];
  return (code & 8) ? -v : v;
}

inline float e4m3_round(float x) {
  float a = std::fabs(x);
  if (std::isnan(a)) return x;
  if (a >= kE4M3Max) return std::copysign(kE4M3Max, x);
  int e = a < pow2(kE4M3MinExp) ? kE4M3MinExp : floor_log2(a);  // 0 and subnormals: step 2^-9
  float step = pow2(e - 3);
  return std::copysign(rne(a / step) * step, x);
}

inline uint8_t e4m3_encode(float x) {
  uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  if (std::isnan(x)) return uint8_t(sign | kE4M3NaN);
  float r = std::fabs(e4m3_round(x));
  if (r < pow2(kE4M3MinExp)) return uint8_t(sign | int(r * 512.0f));  // subnormal: m * 2^-9
  int e = floor_log2(r);
  int m = int(r / pow2(e - 3)) - 8;  // exact: r is on the grid
  return uint8_t(sign | ((e + 7) << 3) | m);
}

inline float e4m3_decode(uint8_t byte) {
  int e = (byte >> 3) & 0xf, m = byte & 7;
  float v;
  if (e == 15 && m == 7) v = NAN;
  else if (e == 0) v = float(m) * pow2(-9);
  else v = float(8 + m) * pow2(e - 10);
  return (byte & 0x80) ? -v : v;
}

inline uint8_t e8m0_encode(int e) { return uint8_t(e + kE8M0Bias); }

inline float e8m0_decode(uint8_t byte) {
  return byte == kE8M0NaN ? NAN : pow2(int(byte) - kE8M0Bias);
}

}  // namespace sr::codec
