// The rounding rules of llama.cpp's legacy ref encoders (internal to quant/formats),
// shared by ggml_legacy.cpp and the frozen-parameter encoder so both produce the
// same codes. `t` is the element already multiplied by 1/d (minus the block minimum
// for Q4_1/Q5_1), in fp32. Results are unsigned codes.
//
// ggml writes MIN(max, (int8_t)(t + offset)): a truncating conversion, i.e. round
// half up for t + offset >= 0. For t + offset <= -1 (never reached by the ref
// encoders, only by a large negative rounding offset) ggml's conversion is out of
// range; we clamp to 0 instead.
#pragma once
#include <cmath>

namespace sr {

inline int legacy_truncate_code(float t, int max) {
  if (!(t > 0.0f)) return 0;  // (int8_t) of (-1, 0] is 0; NaN also lands here
  if (t >= float(max)) return max;
  return int(t);
}

// Q4_0 (half_range 8) and Q5_0 (16): code = trunc(t + half_range + 0.5).
inline int legacy_ref_code_sym(float t, int half_range) {
  const float offset = float(half_range) + 0.5f;  // 8.5f / 16.5f exactly
  return legacy_truncate_code(t + offset, 2 * half_range - 1);
}

// Q4_1 (code_max 15) and Q5_1 (31): code = trunc(t + 0.5).
inline int legacy_ref_code_asym(float t, int code_max) {
  return legacy_truncate_code(t + 0.5f, code_max);
}

// Q8_0: roundf (half away from zero), returned biased by 128 as an unsigned code.
inline int legacy_ref_code_q8(float t) {
  if (t != t) return 128;
  float r = std::round(t);
  if (r < -128.0f) r = -128.0f;
  if (r > 127.0f) r = 127.0f;
  return int(r) + 128;
}

// The fp32 block parameters the ref encoders round against (xb: one 32-element block).
// Q4_0/Q5_0: signed absmax / -half_range. Q8_0: absmax / 127.
// Q4_1/Q5_1: *d = (max - min) / code_max, *min = block minimum.
float legacy_ref_sym_scale(const float* xb, int half_range);
float legacy_ref_q8_scale(const float* xb);
void legacy_ref_asym_scale(const float* xb, int code_max, float* d, float* min);

}  // namespace sr
