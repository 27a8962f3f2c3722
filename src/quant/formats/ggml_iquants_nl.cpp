// IQ4_NL / IQ4_XS codecs (contract and layouts: ggml_iquants_nl.h). The arithmetic follows
// llama.cpp c392e50's ggml-quants.c operation for operation, in fp32: a reassociated sum or
// a fused multiply-add changes which scale wins, so do not simplify (built with
// -ffp-contract=off, src/CMakeLists.txt).
#include "quant/formats/ggml_iquants_nl.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "quant/formats/ggml_quant_search.h"

namespace sr {

const int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

int iq4nl_nearest_index(float x) {
  const int8_t* val = kIq4nlValues;
  if (x <= val[0]) return 0;
  if (x >= val[15]) return 15;
  int lo = 0, hi = 15;  // val[lo] <= x < val[hi]
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (x < val[mid]) hi = mid;
    else lo = mid;
  }
  return x - val[hi - 1] < val[hi] - x ? hi - 1 : hi;
}

namespace {

using ggml_search::kGroupMaxEps;
using ggml_search::nearest_int;

constexpr int kQkK = 256;
constexpr int kTries = 7;  // ggml's ntry for both types

// One super-block of `size` elements (32: IQ4_NL, 256: IQ4_XS) in sub-blocks of 32:
// quantize_row_iq4_nl_impl. Writes the fp16 d, the packed indices and, for IQ4_XS
// (size > 32), the sub-block scale codes. qw: importance [size] or nullptr.
void quantize_super_block(int size, const float* x, const float* qw, uint16_t* dh, uint8_t* q4,
                          uint16_t* scales_h, uint8_t* scales_l) {
  const int8_t* values = kIq4nlValues;
  const int nb = size / kQkIq4Nl;
  float scales[kQkK / kQkIq4Nl];
  float weight[kQkIq4Nl];
  uint8_t L[kQkK];

  float sigma2 = 0;
  for (int j = 0; j < size; ++j) sigma2 += x[j] * x[j];
  sigma2 *= 2.f / size;

  float max_scale = 0, amax_scale = 0;
  for (int ib = 0; ib < nb; ++ib) {
    const float* xb = x + ib * kQkIq4Nl;
    uint8_t* Lb = L + ib * kQkIq4Nl;
    if (qw) {
      for (int j = 0; j < kQkIq4Nl; ++j) weight[j] = qw[ib * kQkIq4Nl + j] * std::sqrt(sigma2 + xb[j] * xb[j]);
    } else {
      for (int j = 0; j < kQkIq4Nl; ++j) weight[j] = xb[j] * xb[j];
    }
    float amax = 0, max = 0;
    for (int j = 0; j < kQkIq4Nl; ++j) {
      const float ax = std::fabs(xb[j]);
      if (ax > amax) {
        amax = ax;
        max = xb[j];
      }
    }
    if (amax < kGroupMaxEps) {
      scales[ib] = 0;
      continue;
    }
    // -max / -127: maps the largest-magnitude element onto the table's end, -127.
    float d = -max / float(values[0]);
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < kQkIq4Nl; ++j) {
      const int l = iq4nl_nearest_index(id * xb[j]);
      Lb[j] = uint8_t(l);
      const float q = values[l];
      const float w = weight[j];
      sumqx += w * q * xb[j];
      sumq2 += w * q * q;
    }
    d = sumqx / sumq2;
    float best = d * sumqx;
    for (int itry = -kTries; itry <= kTries; ++itry) {
      id = float(itry + values[0]) / max;
      sumqx = sumq2 = 0;
      for (int j = 0; j < kQkIq4Nl; ++j) {
        const float q = values[iq4nl_nearest_index(id * xb[j])];
        const float w = weight[j];
        sumqx += w * q * xb[j];
        sumq2 += w * q * q;
      }
      if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
        d = sumqx / sumq2;
        best = d * sumqx;
      }
    }
    scales[ib] = d;
    const float abs_d = std::fabs(d);
    if (abs_d > amax_scale) {
      amax_scale = abs_d;
      max_scale = d;
    }
  }

  if (nb > 1) {
    *scales_h = 0;
    // The signed largest sub-block scale maps to code -32 (stored 0); an all-zero super-block
    // gives d = -0.0f, stored as the fp16 -0 (0x8000), as ggml writes it.
    const float d = -max_scale / 32;
    *dh = f32_to_f16(d);
    const float id = d != 0 ? 1 / d : 0.f;
    for (int ib = 0; ib < nb; ++ib) {
      int l = nearest_int(id * scales[ib]);
      l = l < -32 ? -32 : l > 31 ? 31 : l;
      const float dl = d * l;
      const float idl = dl != 0 ? 1 / dl : 0.f;
      uint8_t* Lb = L + ib * kQkIq4Nl;
      const float* xb = x + ib * kQkIq4Nl;
      for (int j = 0; j < kQkIq4Nl; ++j) Lb[j] = uint8_t(iq4nl_nearest_index(idl * xb[j]));
      l += 32;
      const uint8_t l_l = uint8_t(l & 0xf), l_h = uint8_t(l >> 4);
      if (ib % 2 == 0) scales_l[ib / 2] = l_l;
      else scales_l[ib / 2] |= uint8_t(l_l << 4);
      *scales_h |= uint16_t(l_h << 2 * (ib % 8));
    }
  } else {
    *dh = f32_to_f16(scales[0]);
    const float id = scales[0] != 0 ? 1 / scales[0] : 0;
    for (int j = 0; j < size; ++j) L[j] = uint8_t(iq4nl_nearest_index(id * x[j]));
  }

  for (int i = 0; i < size / 32; ++i)
    for (int j = 0; j < 16; ++j) q4[16 * i + j] = uint8_t(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
}

// Blocks are copied through aligned structs, so callers may pass any byte buffer.
void quantize_nl(const float* x, void* blocks, int64_t n, const float* qw) {
  auto* out = static_cast<uint8_t*>(blocks);
  for (int64_t b = 0; b < n / kQkIq4Nl; ++b) {
    BlockIQ4_NL blk{};
    quantize_super_block(kQkIq4Nl, x + b * kQkIq4Nl, qw ? qw + b * kQkIq4Nl : nullptr, &blk.d, blk.qs, nullptr,
                         nullptr);
    std::memcpy(out + b * sizeof(blk), &blk, sizeof(blk));
  }
}

void quantize_xs(const float* x, void* blocks, int64_t n, const float* qw) {
  auto* out = static_cast<uint8_t*>(blocks);
  for (int64_t b = 0; b < n / kQkK; ++b) {
    BlockIQ4_XS blk{};
    quantize_super_block(kQkK, x + b * kQkK, qw ? qw + b * kQkK : nullptr, &blk.d, blk.qs, &blk.scales_h,
                         blk.scales_l);
    std::memcpy(out + b * sizeof(blk), &blk, sizeof(blk));
  }
}

// Geometry of one row of either type: bytes per block, 32-element sub-blocks per block,
// offset of the index nibbles in a block.
struct Layout {
  int64_t block, bytes, qs_at;
};
Layout layout(bool xs) { return xs ? Layout{kQkK, 136, 8} : Layout{kQkIq4Nl, 18, 2}; }

}  // namespace

void iq4_row_scales(bool xs, const void* blocks, int64_t n, float* scale) {
  const auto* p = static_cast<const uint8_t*>(blocks);
  const Layout g = layout(xs);
  for (int64_t b = 0; b < n / g.block; ++b) {
    if (!xs) {
      BlockIQ4_NL blk;
      std::memcpy(&blk, p + b * g.bytes, sizeof(blk));
      scale[b] = f16_to_f32(blk.d);
      continue;
    }
    BlockIQ4_XS blk;
    std::memcpy(&blk, p + b * g.bytes, sizeof(blk));
    const float d = f16_to_f32(blk.d);
    for (int ib = 0; ib < kQkK / kQkIq4Nl; ++ib) {
      const int ls = ((blk.scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) | (((blk.scales_h >> 2 * ib) & 3) << 4);
      scale[b * 8 + ib] = d * float(ls - 32);
    }
  }
}

void iq4_unpack_row(bool xs, const void* blocks, int64_t n, uint8_t* codes) {
  const auto* p = static_cast<const uint8_t*>(blocks);
  const Layout g = layout(xs);
  for (int64_t b = 0; b < n / g.block; ++b) {
    const uint8_t* qs = p + b * g.bytes + g.qs_at;
    uint8_t* c = codes + b * g.block;
    for (int64_t s = 0; s < g.block / 32; ++s)
      for (int j = 0; j < 16; ++j) {
        c[32 * s + j] = qs[16 * s + j] & 0xf;
        c[32 * s + 16 + j] = qs[16 * s + j] >> 4;
      }
  }
}

void iq4_pack_row(bool xs, const uint8_t* codes, void* blocks, int64_t n) {
  auto* p = static_cast<uint8_t*>(blocks);
  const Layout g = layout(xs);
  for (int64_t b = 0; b < n / g.block; ++b) {
    uint8_t* qs = p + b * g.bytes + g.qs_at;
    const uint8_t* c = codes + b * g.block;
    for (int64_t s = 0; s < g.block / 32; ++s)
      for (int j = 0; j < 16; ++j) qs[16 * s + j] = uint8_t(c[32 * s + j] | (c[32 * s + 16 + j] << 4));
  }
}

// Decoding: the sub-block scale (fp32, as iq4_row_scales computes it) times the table value.
namespace {
void dequantize(bool xs, const void* blocks, float* y, int64_t n) {
  const Layout g = layout(xs);
  float scale[kQkK / kQkIq4Nl];
  uint8_t c[kQkK];
  const auto* p = static_cast<const uint8_t*>(blocks);
  for (int64_t b = 0; b < n / g.block; ++b) {
    iq4_row_scales(xs, p + b * g.bytes, g.block, scale);
    iq4_unpack_row(xs, p + b * g.bytes, g.block, c);
    for (int64_t e = 0; e < g.block; ++e) y[b * g.block + e] = scale[e / 32] * float(kIq4nlValues[c[e]]);
  }
}
}  // namespace

float iq4nl_index_coord(float u) {
  const int8_t* L = kIq4nlValues;
  int i = 0;  // the segment [L_i, L_{i+1}] (end segments extended)
  while (i < 14 && u > float(L[i + 1])) ++i;
  return float(i) + (u - float(L[i])) / float(L[i + 1] - L[i]);
}

namespace {
// The code of one element and, if dv, its straight-through derivative (contract in the header).
int frozen_code(float x, float v, float s, float* dv) {
  const float y = iq4nl_index_coord(x / s) + v;
  const float c = std::floor(y + 0.5f);
  if (!(c >= 0.f && c <= 15.f)) {  // clamped (NaN: code 0)
    if (dv) *dv = 0;
    return c > 15.f ? 15 : 0;
  }
  if (dv) {
    const int j = std::min(14, std::max(0, int(std::floor(y))));
    *dv = s * float(kIq4nlValues[j + 1] - kIq4nlValues[j]);
  }
  return int(c);
}

void qdq_frozen(bool xs, const void* blocks, const float* x, const float* v, int64_t n, float* x_hat, float* dv,
                uint8_t* codes) {
  std::vector<float> scale(size_t(n / kQkIq4Nl));
  std::vector<uint8_t> searched(static_cast<size_t>(n));
  iq4_row_scales(xs, blocks, n, scale.data());
  iq4_unpack_row(xs, blocks, n, searched.data());
  for (int64_t e = 0; e < n; ++e) {
    const float s = scale[size_t(e / kQkIq4Nl)];
    int c = searched[size_t(e)];
    float d = 0;
    if (s != 0) {  // the element sets its code: it must be a number
      SR_CHECK(std::isfinite(x[e]), "[ggml] cannot encode a ", xs ? "iq4_xs" : "iq4_nl", " row: element ", e, " is ",
               x[e]);
      SR_CHECK(!v || std::isfinite(v[e]), "[ggml] cannot encode a ", xs ? "iq4_xs" : "iq4_nl",
               " row: rounding offset v[", e, "] is ", v[e]);
      c = frozen_code(x[e], v ? v[e] : 0.f, s, &d);
    }
    if (x_hat) x_hat[e] = s * float(kIq4nlValues[c]);
    if (dv) dv[e] = d;
    if (codes) codes[e] = uint8_t(c);
  }
}
}  // namespace

void iq4_qdq_row_frozen(bool xs, const void* blocks, const float* x, const float* v, int64_t n, float* x_hat,
                        float* dv) {
  qdq_frozen(xs, blocks, x, v, n, x_hat, dv, nullptr);
}

void iq4_encode_row_frozen(bool xs, void* blocks, const float* x, const float* v, int64_t n) {
  std::vector<uint8_t> codes(static_cast<size_t>(n));
  qdq_frozen(xs, blocks, x, v, n, nullptr, nullptr, codes.data());
  iq4_pack_row(xs, codes.data(), blocks, n);
}

void dequantize_row_iq4_nl(const void* blocks, float* y, int64_t n) { dequantize(false, blocks, y, n); }
void dequantize_row_iq4_xs(const void* blocks, float* y, int64_t n) { dequantize(true, blocks, y, n); }

void quantize_row_iq4_nl_ref(const float* x, void* blocks, int64_t n) { quantize_nl(x, blocks, n, nullptr); }
void quantize_row_iq4_xs_ref(const float* x, void* blocks, int64_t n) { quantize_xs(x, blocks, n, nullptr); }
void quantize_row_iq4_nl_weighted(const float* x, void* blocks, int64_t n, const float* weights) {
  quantize_nl(x, blocks, n, weights);
}
void quantize_row_iq4_xs_weighted(const float* x, void* blocks, int64_t n, const float* weights) {
  quantize_xs(x, blocks, n, weights);
}

}  // namespace sr
