// Legacy ggml blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): layouts in ggml_legacy.h.
// The ref encoders follow quantize_row_*_ref of llama.cpp c392e50 operation by
// operation; the weighted ones follow quantize_row_*_impl with quant_weights set.
#include "quant/formats/ggml_legacy.h"

#include <cfloat>
#include <cmath>
#include <cstring>

#include "common/half.h"
#include "quant/formats/ggml_quant_search.h"

namespace sr {
namespace {

constexpr int QK = kQkLegacy;

// ---- code packing -------------------------------------------------------------

void unpack_nibbles(const uint8_t* qs, uint8_t* codes) {
  for (int j = 0; j < QK / 2; ++j) {
    codes[j] = qs[j] & 0x0F;
    codes[j + QK / 2] = qs[j] >> 4;
  }
}

void pack_nibbles(const uint8_t* codes, uint8_t* qs) {
  for (int j = 0; j < QK / 2; ++j) qs[j] = uint8_t((codes[j] & 0x0F) | ((codes[j + QK / 2] & 0x0F) << 4));
}

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);  // little-endian host (asserted in io/gguf.cpp)
  return v;
}

// The 5th bit of element e is bit e of qh.
void unpack_fifth_bits(const uint8_t* qh_bytes, uint8_t* codes) {
  uint32_t qh = load_u32(qh_bytes);
  for (int e = 0; e < QK; ++e) codes[e] = uint8_t(codes[e] | (((qh >> e) & 1u) << 4));
}

void pack_fifth_bits(const uint8_t* codes, uint8_t* qh_bytes) {
  uint32_t qh = 0;
  for (int e = 0; e < QK; ++e) qh |= uint32_t((codes[e] >> 4) & 1u) << e;
  std::memcpy(qh_bytes, &qh, 4);
}

// ---- statistics used by the ref encoders ---------------------------------------

// The signed element of largest magnitude (first on ties), as Q4_0/Q5_0 ref use it.
float signed_absmax(const float* x) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int j = 0; j < QK; j++) {
    const float v = x[j];
    if (amax < std::fabs(v)) {
      amax = std::fabs(v);
      max = v;
    }
  }
  return max;
}

void min_max(const float* x, float* min, float* max) {
  *min = FLT_MAX;
  *max = -FLT_MAX;
  for (int j = 0; j < QK; j++) {
    const float v = x[j];
    if (v < *min) *min = v;
    if (v > *max) *max = v;
  }
}

// Mean square of a whole row: the sigma2 of llama.cpp's legacy imatrix paths.
float row_sigma2(const float* x, int64_t n) {
  float sum_x2 = 0;
  for (int64_t j = 0; j < n; ++j) sum_x2 += x[j] * x[j];
  return sum_x2 / n;
}

void importance(const float* xb, const float* qw, float sigma2, float* weight) {
  for (int j = 0; j < QK; ++j) weight[j] = qw[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
}

// ---- the ref encoders' rounding rules ----------------------------------------------
// `t` is the element already multiplied by 1/d (minus the block minimum for Q4_1/Q5_1),
// in fp32. ggml writes MIN(max, (int8_t)(t + offset)): a truncating conversion, i.e. round
// half up for t + offset >= 0. For t + offset <= -1 (never reached by the ref encoders,
// only by a large negative rounding offset) ggml's conversion is out of range; we clamp
// to 0 instead.

int truncate_code(float t, int max) {
  if (!(t > 0.0f)) return 0;  // (int8_t) of (-1, 0] is 0; NaN also lands here
  if (t >= float(max)) return max;
  return int(t);
}

// Q4_0 (half_range 8) and Q5_0 (16): code = trunc(t + half_range + 0.5).
int ref_code_sym(float t, int half_range) {
  const float offset = float(half_range) + 0.5f;  // 8.5f / 16.5f exactly
  return truncate_code(t + offset, 2 * half_range - 1);
}

// Q4_1 (code_max 15) and Q5_1 (31): code = trunc(t + 0.5).
int ref_code_asym(float t, int code_max) { return truncate_code(t + 0.5f, code_max); }

// Q8_0: roundf (half away from zero), returned biased by 128 as an unsigned code.
int ref_code_q8(float t) {
  if (t != t) return 128;
  float r = std::round(t);
  if (r < -128.0f) r = -128.0f;
  if (r > 127.0f) r = 127.0f;
  return int(r) + 128;
}

template <typename Block>
Block load(const uint8_t* p) {
  Block b;
  std::memcpy(&b, p, sizeof(b));
  return b;
}

}  // namespace

// ---- code packing and block parameters ------------------------------------------------

template <typename Block, int Bits, bool Asym>
void LegacyCodec<Block, Bits, Asym>::unpack(const uint8_t* block, uint8_t* codes) {
  const Block b = load<Block>(block);
  if constexpr (Bits == 8) {
    for (int e = 0; e < QK; ++e) codes[e] = uint8_t(b.qs[e] + 128);
  } else {
    unpack_nibbles(b.qs, codes);
    if constexpr (Bits == 5) unpack_fifth_bits(b.qh, codes);
  }
}

template <typename Block, int Bits, bool Asym>
void LegacyCodec<Block, Bits, Asym>::pack(const uint8_t* codes, uint8_t* block) {
  Block b = load<Block>(block);
  if constexpr (Bits == 8) {
    for (int e = 0; e < QK; ++e) b.qs[e] = int8_t(int(codes[e]) - 128);
  } else {
    pack_nibbles(codes, b.qs);
    if constexpr (Bits == 5) pack_fifth_bits(codes, b.qh);
  }
  std::memcpy(block, &b, sizeof(b));
}

template <typename Block, int Bits, bool Asym>
void LegacyCodec<Block, Bits, Asym>::decode(const uint8_t* block, float* scale, float* min) {
  const Block b = load<Block>(block);
  scale[0] = f16_to_f32(b.d);
  if constexpr (Asym) {
    min[0] = -f16_to_f32(b.m);
  } else {
    min[0] = 0.0f;
  }
}

// ---- ref encoders -------------------------------------------------------------------

template <typename Block, int Bits, bool Asym>
void LegacyCodec<Block, Bits, Asym>::ref_params(const float* xb, float* d, float* min) {
  if constexpr (Asym) {
    float max;
    min_max(xb, min, &max);
    *d = (max - *min) / ((1 << Bits) - 1);
  } else if constexpr (Bits == 8) {
    float amax = 0.0f;
    // ggml's MAX(amax, |v|): keeps the running value unless |v| is larger.
    for (int e = 0; e < QK; ++e) amax = amax > std::fabs(xb[e]) ? amax : std::fabs(xb[e]);
    *d = amax / ((1 << 7) - 1);
    *min = 0.0f;
  } else {
    *d = signed_absmax(xb) / -(1 << (Bits - 1));
    *min = 0.0f;
  }
}

template <typename Block, int Bits, bool Asym>
int LegacyCodec<Block, Bits, Asym>::ref_code(float x, float v, float d, float min) {
  const float inv = d ? 1.0f / d : 0.0f;
  if constexpr (Asym) return ref_code_asym((x - min) * inv + v, (1 << Bits) - 1);
  if constexpr (Bits == 8) return ref_code_q8(x * inv + v);
  return ref_code_sym(x * inv + v, 1 << (Bits - 1));
}

// The codes are rounded against the fp32 d (and min) before those are stored as fp16.
// ref_code with v = 0 is the ref rule exactly: t + 0 differs from t only for t = -0, and
// every rule then adds a non-zero offset or rounds, which maps -0 and +0 alike.
template <typename Block, int Bits, bool Asym>
void LegacyCodec<Block, Bits, Asym>::quantize_row_ref(const float* x, void* blocks, int64_t n) {
  auto* y = static_cast<Block*>(blocks);
  uint8_t c[QK];
  for (int64_t i = 0; i < n / QK; ++i) {
    const float* xb = x + i * QK;
    float d, min;
    ref_params(xb, &d, &min);
    y[i].d = f32_to_f16(d);
    if constexpr (Asym) y[i].m = f32_to_f16(min);
    for (int e = 0; e < QK; ++e) c[e] = uint8_t(ref_code(xb[e], 0.0f, d, min));
    pack(c, reinterpret_cast<uint8_t*>(&y[i]));
  }
}

// ---- weighted (imatrix) encoders ----------------------------------------------------

template <typename Block, int Bits, bool Asym>
void LegacyCodec<Block, Bits, Asym>::quantize_row_weighted(const float* x, void* blocks, int64_t n,
                                                           const float* qw) {
  if constexpr (Bits == 8) {
    quantize_row_ref(x, blocks, n);  // llama.cpp has no imatrix path for Q8_0
  } else {
    auto* y = static_cast<Block*>(blocks);
    const float sigma2 = row_sigma2(x, n);
    float weight[QK];
    uint8_t L[QK];
    for (int64_t ib = 0; ib < n / QK; ++ib) {
      const float* xb = x + QK * ib;
      importance(xb, qw + QK * ib, sigma2, weight);
      if constexpr (Asym) {
        uint8_t Laux[QK];
        float neg_min;
        const float d = ggml_search::make_qkx_quants(QK, (1 << Bits) - 1, xb, weight, L, &neg_min, Laux,
                                                     {-0.9f, 0.05f, 36, false});
        y[ib].d = f32_to_f16(d);
        y[ib].m = f32_to_f16(-neg_min);
      } else {
        int8_t Ls[QK];
        y[ib].d = f32_to_f16(ggml_search::make_qx_quants(QK, 1 << (Bits - 1), xb, Ls, weight));
        for (int e = 0; e < QK; ++e) L[e] = uint8_t(Ls[e]);
      }
      pack(L, reinterpret_cast<uint8_t*>(&y[ib]));
    }
  }
}

template struct LegacyCodec<BlockQ4_0, 4, false>;
template struct LegacyCodec<BlockQ4_1, 4, true>;
template struct LegacyCodec<BlockQ5_0, 5, false>;
template struct LegacyCodec<BlockQ5_1, 5, true>;
template struct LegacyCodec<BlockQ8_0, 8, false>;

}  // namespace sr
