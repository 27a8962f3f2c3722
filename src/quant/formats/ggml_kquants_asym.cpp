// Encoders of the asymmetric k-quants Q2_K, Q4_K, Q5_K (x ~ scale*c - min per
// sub-block). Ports of quantize_row_q{2,4,5}_K_ref and quantize_row_q{2,4,5}_K_impl
// of llama.cpp c392e50. Each encoder runs three stages:
//   1. a scale/min search per sub-block (ggml_quant_search),
//   2. quantization of those scales and mins to small integer codes with one fp16
//      factor each per super-block (the "double quantization"),
//   3. re-rounding of every element against the stored, double-quantized parameters.
#include <algorithm>
#include <cmath>

#include "common/half.h"
#include "quant/formats/ggml_kquants.h"
#include "quant/formats/ggml_kquants_scales.h"
#include "quant/formats/ggml_quant_search.h"

namespace sr {
namespace {

using ggml_search::nearest_int;

// Stage 3: codes of the sub-blocks whose stored scale is non-zero; the others keep
// the codes of the search, as ggml does (they decode to -min whatever they are).
void requantize_asym(const float* x, const float* scale, const float* min, int n_groups,
                     int group, int nmax, uint8_t* L) {
  for (int g = 0; g < n_groups; ++g) {
    const float d = scale[g];
    if (!d) continue;
    const float dm = min[g];
    for (int ii = 0; ii < group; ++ii) {
      int l = nearest_int((x[group * g + ii] + dm) / d);
      L[group * g + ii] = uint8_t(std::max(0, std::min(nmax, l)));
    }
  }
}

// Largest scale and largest min over the sub-blocks (both start at 0).
void max_scale_min(const float* scales, const float* mins, int n_groups, float* max_scale,
                   float* max_min) {
  *max_scale = 0;
  *max_min = 0;
  for (int j = 0; j < n_groups; ++j) {
    if (scales[j] > *max_scale) *max_scale = scales[j];
    if (mins[j] > *max_min) *max_min = mins[j];
  }
}

// Stage 3 against the stored parameters of y (sub-blocks of `group`), then the codes into y.
template <typename Block>
void finish_asym(const float* x, Block* y, uint8_t* L, int group, int nmax,
                 void (*params)(const Block&, float*, float*), void (*pack)(const uint8_t*, Block*)) {
  float scale[16], min[16];
  params(*y, scale, min);
  requantize_asym(x, scale, min, kQkK / group, group, nmax, L);
  pack(L, y);
}

}  // namespace

// ---- Q2_K ----------------------------------------------------------------------------

void quantize_block_q2_K_ref(const float* x, BlockQ2_K* y) {
  constexpr float q4scale = 15.f;
  uint8_t L[kQkK], Laux[16];
  float weights[16], mins[16], scales[16];
  for (int j = 0; j < 16; ++j) {
    for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
    scales[j] = ggml_search::make_qkx_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux,
                                             {-0.5f, 0.1f, 15, true});
  }
  float max_scale, max_min;
  max_scale_min(scales, mins, 16, &max_scale, &max_min);
  if (max_scale > 0) {
    const float iscale = q4scale / max_scale;
    for (int j = 0; j < 16; ++j) y->scales[j] = uint8_t(nearest_int(iscale * scales[j]));
    y->d = f32_to_f16(max_scale / q4scale);
  } else {
    for (int j = 0; j < 16; ++j) y->scales[j] = 0;
    y->d = f32_to_f16(0.f);
  }
  if (max_min > 0) {
    const float iscale = q4scale / max_min;
    for (int j = 0; j < 16; ++j) {
      const int l = nearest_int(iscale * mins[j]);
      y->scales[j] = uint8_t(y->scales[j] | (l << 4));
    }
    y->dmin = f32_to_f16(max_min / q4scale);
  } else {
    y->dmin = f32_to_f16(0.f);
  }
  finish_asym(x, y, L, 16, 3, block_params_q2_K, pack_codes_q2_K);
}

void quantize_block_q2_K_weighted(const float* x, BlockQ2_K* y, const float* qw) {
  uint8_t L[kQkK], Laux[16], Ls[16], Lm[16];
  float mins[16], scales[16], sw[16], weight[16];
  float sumx2 = 0;
  for (int j = 0; j < kQkK; ++j) sumx2 += x[j] * x[j];
  const float sigma2 = sumx2 / kQkK;
  for (int j = 0; j < 16; ++j) {
    for (int l = 0; l < 16; ++l) weight[l] = qw[16 * j + l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
    sw[j] = 0;
    for (int l = 0; l < 16; ++l) sw[j] += weight[l];
    scales[j] = ggml_search::make_qkx_quants(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], Laux,
                                             {-0.9f, 0.05f, 36, false});
  }
  const float dm = ggml_search::make_qp_quants(16, 15, scales, Ls, sw);
  const float mm = ggml_search::make_qp_quants(16, 15, mins, Lm, sw);
  y->d = f32_to_f16(dm);
  y->dmin = f32_to_f16(mm);
  for (int j = 0; j < 16; ++j) y->scales[j] = uint8_t(Ls[j] | (Lm[j] << 4));
  finish_asym(x, y, L, 16, 3, block_params_q2_K, pack_codes_q2_K);
}

namespace {

// ---- Q4_K / Q5_K ----------------------------------------------------------------------

// Stages 1-2 of the ref path: weights |x| + rms(x) per sub-block, max-based 6-bit codes.
template <typename Block>
void k4_ref_header(const float* x, Block* y, uint8_t* L, int nmax, ggml_search::AsymSearch search) {
  uint8_t Laux[32];
  float weights[32], mins[8], scales[8];
  for (int j = 0; j < 8; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = ggml_search::make_qkx_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, search);
  }
  float max_scale, max_min;
  max_scale_min(scales, mins, 8, &max_scale, &max_min);
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = std::min<uint8_t>(63, uint8_t(nearest_int(inv_scale * scales[j])));
    lm[j] = std::min<uint8_t>(63, uint8_t(nearest_int(inv_min * mins[j])));
  }
  k4_set_scales_mins(ls, lm, y->scales);
  y->d = f32_to_f16(max_scale / 63.f);
  y->dmin = f32_to_f16(max_min / 63.f);
}

// Stages 1-2 of the imatrix path. ggml clamps the codes to 63 for Q5_K but not Q4_K.
template <typename Block>
void k4_weighted_header(const float* x, Block* y, uint8_t* L, int nmax, const float* qw,
                        bool clamp_codes) {
  uint8_t Laux[32], Ls[8], Lm[8];
  float weights[32], sw[8], mins[8], scales[8];
  float sum_x2 = 0;
  for (int l = 0; l < kQkK; ++l) sum_x2 += x[l] * x[l];
  const float sigma2 = 2 * sum_x2 / kQkK;
  for (int j = 0; j < 8; ++j) {
    for (int l = 0; l < 32; ++l) weights[l] = qw[32 * j + l] * std::sqrt(sigma2 + x[32 * j + l] * x[32 * j + l]);
    float sumw = 0;
    for (int l = 0; l < 32; ++l) sumw += weights[l];
    sw[j] = sumw;
    scales[j] = ggml_search::make_qkx_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                             {-0.9f, 0.05f, 36, false});
  }
  const float d_block = ggml_search::make_qp_quants(8, 63, scales, Ls, sw);
  const float m_block = ggml_search::make_qp_quants(8, 63, mins, Lm, sw);
  if (clamp_codes) {
    for (int j = 0; j < 8; ++j) {
      Ls[j] = std::min<uint8_t>(63, Ls[j]);
      Lm[j] = std::min<uint8_t>(63, Lm[j]);
    }
  }
  k4_set_scales_mins(Ls, Lm, y->scales);
  y->d = f32_to_f16(d_block);
  y->dmin = f32_to_f16(m_block);
}

}  // namespace

void quantize_block_q4_K_ref(const float* x, BlockQ4_K* y) {
  uint8_t L[kQkK];
  k4_ref_header(x, y, L, 15, {-1.f, 0.1f, 20, false});
  finish_asym(x, y, L, 32, 15, block_params_q4_K, pack_codes_q4_K);
}

void quantize_block_q5_K_ref(const float* x, BlockQ5_K* y) {
  uint8_t L[kQkK];
  k4_ref_header(x, y, L, 31, {-0.5f, 0.1f, 15, false});
  finish_asym(x, y, L, 32, 31, block_params_q5_K, pack_codes_q5_K);
}

void quantize_block_q4_K_weighted(const float* x, BlockQ4_K* y, const float* weights) {
  uint8_t L[kQkK];
  k4_weighted_header(x, y, L, 15, weights, false);
  finish_asym(x, y, L, 32, 15, block_params_q4_K, pack_codes_q4_K);
}

void quantize_block_q5_K_weighted(const float* x, BlockQ5_K* y, const float* weights) {
  uint8_t L[kQkK];
  k4_weighted_header(x, y, L, 31, weights, true);
  finish_asym(x, y, L, 32, 31, block_params_q5_K, pack_codes_q5_K);
}

}  // namespace sr
