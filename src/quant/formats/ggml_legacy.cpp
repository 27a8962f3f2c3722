// Legacy ggml blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): layouts in ggml_legacy.h.
// The ref encoders follow quantize_row_*_ref of llama.cpp c392e50 operation by
// operation; the weighted ones follow quantize_row_*_impl with quant_weights set.
#include "quant/formats/ggml_legacy.h"

#include <cfloat>
#include <cmath>
#include <cstring>

#include "common/half.h"
#include "quant/formats/ggml_legacy_rounding.h"
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

}  // namespace

float legacy_ref_sym_scale(const float* xb, int half_range) { return signed_absmax(xb) / -half_range; }

float legacy_ref_q8_scale(const float* xb) {
  float amax = 0.0f;
  // ggml's MAX(amax, |v|): keeps the running value unless |v| is larger.
  for (int e = 0; e < QK; ++e) amax = amax > std::fabs(xb[e]) ? amax : std::fabs(xb[e]);
  return amax / ((1 << 7) - 1);
}

void legacy_ref_asym_scale(const float* xb, int code_max, float* d, float* min) {
  float max;
  min_max(xb, min, &max);
  *d = (max - *min) / code_max;
}

// ---- pack / unpack ----------------------------------------------------------------

void unpack_codes_q4_0(const BlockQ4_0& b, uint8_t* codes) { unpack_nibbles(b.qs, codes); }
void unpack_codes_q4_1(const BlockQ4_1& b, uint8_t* codes) { unpack_nibbles(b.qs, codes); }
void unpack_codes_q5_0(const BlockQ5_0& b, uint8_t* codes) {
  unpack_nibbles(b.qs, codes);
  unpack_fifth_bits(b.qh, codes);
}
void unpack_codes_q5_1(const BlockQ5_1& b, uint8_t* codes) {
  unpack_nibbles(b.qs, codes);
  unpack_fifth_bits(b.qh, codes);
}
void unpack_codes_q8_0(const BlockQ8_0& b, uint8_t* codes) {
  for (int e = 0; e < QK; ++e) codes[e] = uint8_t(b.qs[e] + 128);
}

void pack_codes_q4_0(const uint8_t* codes, BlockQ4_0* b) { pack_nibbles(codes, b->qs); }
void pack_codes_q4_1(const uint8_t* codes, BlockQ4_1* b) { pack_nibbles(codes, b->qs); }
void pack_codes_q5_0(const uint8_t* codes, BlockQ5_0* b) {
  pack_nibbles(codes, b->qs);
  pack_fifth_bits(codes, b->qh);
}
void pack_codes_q5_1(const uint8_t* codes, BlockQ5_1* b) {
  pack_nibbles(codes, b->qs);
  pack_fifth_bits(codes, b->qh);
}
void pack_codes_q8_0(const uint8_t* codes, BlockQ8_0* b) {
  for (int e = 0; e < QK; ++e) b->qs[e] = int8_t(int(codes[e]) - 128);
}

// ---- dequantize ---------------------------------------------------------------------
// value = float(signed code) * d [+ m]: the operations of ggml's dequantize_row_*.

namespace {

template <typename Block, void (*Unpack)(const Block&, uint8_t*)>
void dequantize_sym(const Block* x, float* y, int64_t n, int bias) {
  uint8_t c[QK];
  for (int64_t i = 0; i < n / QK; ++i) {
    const float d = f16_to_f32(x[i].d);
    Unpack(x[i], c);
    for (int e = 0; e < QK; ++e) y[i * QK + e] = (int(c[e]) - bias) * d;
  }
}

template <typename Block, void (*Unpack)(const Block&, uint8_t*)>
void dequantize_asym(const Block* x, float* y, int64_t n) {
  uint8_t c[QK];
  for (int64_t i = 0; i < n / QK; ++i) {
    const float d = f16_to_f32(x[i].d);
    const float m = f16_to_f32(x[i].m);
    Unpack(x[i], c);
    for (int e = 0; e < QK; ++e) y[i * QK + e] = int(c[e]) * d + m;
  }
}

}  // namespace

void dequantize_row_q4_0(const BlockQ4_0* x, float* y, int64_t n) {
  dequantize_sym<BlockQ4_0, unpack_codes_q4_0>(x, y, n, 8);
}
void dequantize_row_q5_0(const BlockQ5_0* x, float* y, int64_t n) {
  dequantize_sym<BlockQ5_0, unpack_codes_q5_0>(x, y, n, 16);
}
void dequantize_row_q8_0(const BlockQ8_0* x, float* y, int64_t n) {
  dequantize_sym<BlockQ8_0, unpack_codes_q8_0>(x, y, n, 128);
}
void dequantize_row_q4_1(const BlockQ4_1* x, float* y, int64_t n) {
  dequantize_asym<BlockQ4_1, unpack_codes_q4_1>(x, y, n);
}
void dequantize_row_q5_1(const BlockQ5_1* x, float* y, int64_t n) {
  dequantize_asym<BlockQ5_1, unpack_codes_q5_1>(x, y, n);
}

// ---- ref encoders -------------------------------------------------------------------

namespace {

// Q4_0 / Q5_0: d = (signed absmax) / -(2^(bits-1)), so the extreme element gets code 0.
template <typename Block, void (*Pack)(const uint8_t*, Block*)>
void quantize_sym_ref(const float* x, Block* y, int64_t n, int half_range) {
  uint8_t c[QK];
  for (int64_t i = 0; i < n / QK; ++i) {
    const float* xb = x + i * QK;
    const float d = legacy_ref_sym_scale(xb, half_range);
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    for (int e = 0; e < QK; ++e) c[e] = uint8_t(legacy_ref_code_sym(xb[e] * id, half_range));
    Pack(c, &y[i]);
  }
}

// Q4_1 / Q5_1: d = (max - min) / (2^bits - 1), m = min.
template <typename Block, void (*Pack)(const uint8_t*, Block*)>
void quantize_asym_ref(const float* x, Block* y, int64_t n, int code_max) {
  uint8_t c[QK];
  for (int64_t i = 0; i < n / QK; ++i) {
    const float* xb = x + i * QK;
    float d, min;
    legacy_ref_asym_scale(xb, code_max, &d, &min);
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    y[i].m = f32_to_f16(min);
    for (int e = 0; e < QK; ++e) c[e] = uint8_t(legacy_ref_code_asym((xb[e] - min) * id, code_max));
    Pack(c, &y[i]);
  }
}

}  // namespace

void quantize_row_q4_0_ref(const float* x, BlockQ4_0* y, int64_t n) {
  quantize_sym_ref<BlockQ4_0, pack_codes_q4_0>(x, y, n, 8);
}
void quantize_row_q5_0_ref(const float* x, BlockQ5_0* y, int64_t n) {
  quantize_sym_ref<BlockQ5_0, pack_codes_q5_0>(x, y, n, 16);
}
void quantize_row_q4_1_ref(const float* x, BlockQ4_1* y, int64_t n) {
  quantize_asym_ref<BlockQ4_1, pack_codes_q4_1>(x, y, n, 15);
}
void quantize_row_q5_1_ref(const float* x, BlockQ5_1* y, int64_t n) {
  quantize_asym_ref<BlockQ5_1, pack_codes_q5_1>(x, y, n, 31);
}

void quantize_row_q8_0_ref(const float* x, BlockQ8_0* y, int64_t n) {
  for (int64_t i = 0; i < n / QK; ++i) {
    const float* xb = x + i * QK;
    const float d = legacy_ref_q8_scale(xb);
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    for (int e = 0; e < QK; ++e) y[i].qs[e] = int8_t(legacy_ref_code_q8(xb[e] * id) - 128);
  }
}

// ---- weighted (imatrix) encoders ----------------------------------------------------

namespace {

template <typename Block, void (*Pack)(const uint8_t*, Block*)>
void quantize_sym_weighted(const float* x, Block* y, int64_t n, const float* qw, int nmax) {
  const float sigma2 = row_sigma2(x, n);
  float weight[QK];
  int8_t L[QK];
  uint8_t c[QK];
  for (int64_t ib = 0; ib < n / QK; ++ib) {
    const float* xb = x + QK * ib;
    importance(xb, qw + QK * ib, sigma2, weight);
    const float d = ggml_search::make_qx_quants(QK, nmax, xb, L, weight);
    y[ib].d = f32_to_f16(d);
    for (int e = 0; e < QK; ++e) c[e] = uint8_t(L[e]);
    Pack(c, &y[ib]);
  }
}

template <typename Block, void (*Pack)(const uint8_t*, Block*)>
void quantize_asym_weighted(const float* x, Block* y, int64_t n, const float* qw, int nmax) {
  const float sigma2 = row_sigma2(x, n);
  float weight[QK];
  uint8_t L[QK], Laux[QK];
  for (int64_t ib = 0; ib < n / QK; ++ib) {
    const float* xb = x + QK * ib;
    importance(xb, qw + QK * ib, sigma2, weight);
    float neg_min;
    const float d = ggml_search::make_qkx_quants(QK, nmax, xb, weight, L, &neg_min, Laux,
                                                 {-0.9f, 0.05f, 36, false});
    y[ib].d = f32_to_f16(d);
    y[ib].m = f32_to_f16(-neg_min);
    Pack(L, &y[ib]);
  }
}

}  // namespace

void quantize_row_q4_0_weighted(const float* x, BlockQ4_0* y, int64_t n, const float* weights) {
  quantize_sym_weighted<BlockQ4_0, pack_codes_q4_0>(x, y, n, weights, 8);
}
void quantize_row_q5_0_weighted(const float* x, BlockQ5_0* y, int64_t n, const float* weights) {
  quantize_sym_weighted<BlockQ5_0, pack_codes_q5_0>(x, y, n, weights, 16);
}
void quantize_row_q4_1_weighted(const float* x, BlockQ4_1* y, int64_t n, const float* weights) {
  quantize_asym_weighted<BlockQ4_1, pack_codes_q4_1>(x, y, n, weights, 15);
}
void quantize_row_q5_1_weighted(const float* x, BlockQ5_1* y, int64_t n, const float* weights) {
  quantize_asym_weighted<BlockQ5_1, pack_codes_q5_1>(x, y, n, weights, 31);
}

}  // namespace sr
