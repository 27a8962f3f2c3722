// Encoders of the symmetric k-quants Q3_K and Q6_K (x ~ scale*q per 16-element
// sub-block, q signed). Ports of quantize_row_q{3,6}_K_ref and
// quantize_row_q{3,6}_K_impl of llama.cpp c392e50, in the same three stages as the
// asymmetric ones: sub-block scale search, signed double quantization of the 16
// scales with one fp16 factor, re-rounding against the stored scales.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/half.h"
#include "quant/formats/ggml_kquants.h"
#include "quant/formats/ggml_kquants_scales.h"
#include "quant/formats/ggml_quant_search.h"

namespace sr {
namespace {

using ggml_search::nearest_int;

// Stage 3: L = clamp(nearest(x / scale), -nmax, nmax-1) + nmax for the sub-blocks
// with a non-zero stored scale; the others keep the search's codes, as in ggml.
void requantize_sym(const float* x, const float* scale, int nmax, int8_t* L) {
  for (int g = 0; g < 16; ++g) {
    const float d = scale[g];
    if (!d) continue;
    for (int ii = 0; ii < 16; ++ii) {
      int l = nearest_int(x[16 * g + ii] / d);
      l = std::max(-nmax, std::min(nmax - 1, l));
      L[16 * g + ii] = int8_t(l + nmax);
    }
  }
}

// The signed sub-block scale of largest magnitude (first on ties) and its magnitude.
float signed_max_scale(const float* scales, float* max_abs) {
  float max_scale = 0;
  *max_abs = 0;
  for (int j = 0; j < 16; ++j) {
    const float a = std::fabs(scales[j]);
    if (a > *max_abs) {
      *max_abs = a;
      max_scale = scales[j];
    }
  }
  return max_scale;
}

// Stage 3 against the stored scales of y, then the codes into y.
template <typename Block>
void finish_sym(const float* x, Block* y, int8_t* L, int nmax, void (*params)(const Block&, float*, float*),
                void (*pack)(const uint8_t*, Block*)) {
  float scale[16], min[16];
  params(*y, scale, min);
  requantize_sym(x, scale, nmax, L);
  uint8_t c[kQkK];
  for (int e = 0; e < kQkK; ++e) c[e] = uint8_t(L[e]);
  pack(c, y);
}

}  // namespace

// ---- Q3_K ------------------------------------------------------------------------------

void quantize_block_q3_K_ref(const float* x, BlockQ3_K* y) {
  int8_t L[kQkK];
  float scales[16];
  for (int j = 0; j < 16; ++j) scales[j] = ggml_search::make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
  float amax;
  const float max_scale = signed_max_scale(scales, &amax);
  int biased[16] = {};
  if (max_scale) {
    const float iscale = -32.f / max_scale;
    for (int j = 0; j < 16; ++j) {
      int l = int8_t(nearest_int(iscale * scales[j]));  // ggml stores it in an int8_t first
      biased[j] = std::max(-32, std::min(31, l)) + 32;
    }
    q3k_set_scales(biased, y->scales);
    y->d = f32_to_f16(1 / iscale);
  } else {
    std::memset(y->scales, 0, sizeof(y->scales));
    y->d = f32_to_f16(0.f);
  }
  finish_sym(x, y, L, 4, block_params_q3_K, pack_codes_q3_K);
}

void quantize_block_q3_K_weighted(const float* x, BlockQ3_K* y, const float* qw) {
  int8_t L[kQkK], Ls[16];
  float scales[16], weight[16], sw[16];
  float sumx2 = 0;
  for (int j = 0; j < kQkK; ++j) sumx2 += x[j] * x[j];
  const float sigma2 = 2 * sumx2 / kQkK;
  for (int j = 0; j < 16; ++j) {
    for (int l = 0; l < 16; ++l) weight[l] = qw[16 * j + l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
    float sumw = 0;
    for (int l = 0; l < 16; ++l) sumw += weight[l];
    sw[j] = sumw;
    scales[j] = ggml_search::make_qx_quants(16, 4, x + 16 * j, L + 16 * j, weight);
  }
  // The 16 scales are themselves quantized with the symmetric search, codes in [0, 63].
  const float d_block = ggml_search::make_qx_quants(16, 32, scales, Ls, sw);
  int biased[16];
  for (int j = 0; j < 16; ++j) biased[j] = Ls[j];
  q3k_set_scales(biased, y->scales);
  y->d = f32_to_f16(d_block);
  finish_sym(x, y, L, 4, block_params_q3_K, pack_codes_q3_K);
}

// ---- Q6_K ------------------------------------------------------------------------------

// weights: importance of the 256 elements, or nullptr for ggml's default x^2 (the ref
// encoder below).
void quantize_block_q6_K_weighted(const float* x, BlockQ6_K* y, const float* weights) {
  int8_t L[kQkK];
  float scales[16];
  for (int ib = 0; ib < 16; ++ib) {
    scales[ib] = ggml_search::make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib,
                                             weights ? weights + 16 * ib : nullptr);
  }
  float max_abs_scale;
  const float max_scale = signed_max_scale(scales, &max_abs_scale);
  if (max_abs_scale < ggml_search::kGroupMaxEps) {
    std::memset(y, 0, sizeof(*y));  // an all-zero block, d = +0
    return;
  }
  const float iscale = -128.f / max_scale;
  y->d = f32_to_f16(1 / iscale);
  for (int ib = 0; ib < 16; ++ib) y->scales[ib] = int8_t(std::min(127, nearest_int(iscale * scales[ib])));
  finish_sym(x, y, L, 32, block_params_q6_K, pack_codes_q6_K);
}

void quantize_block_q6_K_ref(const float* x, BlockQ6_K* y) { quantize_block_q6_K_weighted(x, y, nullptr); }

}  // namespace sr
