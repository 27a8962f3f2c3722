// Scalar conversions between IEEE fp32 and the 16-bit storage types, bit exact:
// fp16 (IEEE binary16) and bf16 (upper half of an fp32), both rounding half to even
// on narrowing, as torch's .to(kHalf)/.to(kBFloat16) and ggml's converters do.
// Header-only so hot loops in io/ and quant/ inline them.
#pragma once
#include <cstdint>
#include <cstring>

namespace sr {

inline uint32_t f32_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float f32_from_bits(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

inline float bf16_to_f32(uint16_t h) { return f32_from_bits(uint32_t(h) << 16); }

inline uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);                                          // RNE
  return uint16_t(u >> 16);
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  if (exp == 0) {
    if (man == 0) return f32_from_bits(sign);
    // subnormal: value = man * 2^-24, exact in fp32
    float v = float(man) * (1.0f / 16777216.0f);
    return (sign ? -v : v);
  }
  if (exp == 31) return f32_from_bits(sign | 0x7f800000u | (man << 13));
  return f32_from_bits(sign | ((exp + 112u) << 23) | (man << 13));
}

inline uint16_t f32_to_f16(float f) {
  const uint32_t u = f32_bits(f);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u);           // NaN
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);          // >= 65520 rounds to inf
  if (a < 0x38800000u) {                                          // below 2^-14: subnormal or zero
    // value / 2^-24 rounded half to even gives the subnormal mantissa (may carry to the min normal)
    float v = f32_from_bits(a) * 16777216.0f;  // exact scaling by 2^24
    // rne via the 2^23 trick: v < 1024 so adding 2^23 rounds to an integer in the fp32 unit
    float r = (v + 8388608.0f) - 8388608.0f;
    return uint16_t(sign | uint16_t(r));
  }
  uint32_t m = a + 0x00000fffu + ((a >> 13) & 1u);  // RNE on the 13 dropped bits
  return uint16_t(sign | uint16_t(((m >> 13) - (112u << 10))));
}

}  // namespace sr
