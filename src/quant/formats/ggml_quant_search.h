// The scale searches shared by ggml's legacy and k-quant encoders (internal to
// quant/formats). Each reproduces one of llama.cpp's static helpers in
// ggml/src/ggml-quants.c (c392e50) bit for bit: same float (never double)
// arithmetic, same operation order, same round-half-to-even helper. Do not
// "simplify" an expression here: a reassociated sum changes the chosen scale.
//
// Shapes: x, weights, L are [n] for one sub-block (16 or 32 elements) or, for the
// second-level searches, [n sub-blocks].
#pragma once
#include <cstdint>
#include <cstring>

namespace sr::ggml_search {

// Round half to even for |f| <= 4194303 via the 1.5*2^23 magic constant, exactly as
// ggml's nearest_int. Outside that range the result is ggml's (garbage), kept so that
// pathological inputs still give identical bytes.
inline int nearest_int(float f) {
  float v = f + 12582912.f;
  int32_t i;
  static_assert(sizeof(v) == sizeof(i));
  std::memcpy(&i, &v, sizeof(i));
  return (i & 0x007fffff) - 0x00400000;
}

// Sub-blocks whose largest magnitude is below this are treated as all zero
// (ggml's GROUP_MAX_EPS).
constexpr float kGroupMaxEps = 1e-15f;

// Symmetric search (ggml make_qx_quants with rmse_type 1): start from the scale that
// maps the signed largest-magnitude element to -nmax, then try 18 neighbouring
// scales (nmax +- 0.1k) and keep the one maximising (sum w x l)^2 / (sum w l^2).
// weights: importance [n], or nullptr for w = x^2. Writes L[i] = l + nmax in
// [0, 2*nmax-1]. Returns the least-squares scale (x ~ scale * l); 0 if all |x| tiny.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L, const float* weights);

// Q3_K's symmetric search without importance (make_q3_quants, do_rmse = true):
// rounding at -nmax/max, then up to 5 passes of coordinate descent on each code with
// weights x^2. Writes L[i] = l + nmax. Returns the scale.
float make_q3_quants(int n, int nmax, const float* x, int8_t* L);

// Parameters of the asymmetric grid search: candidate inverse scales
// (rmin + rdelta*i + nmax) / (max - min) for i in [0, nstep], error measured as
// weighted absolute (use_mad) or squared difference.
struct AsymSearch {
  float rmin;
  float rdelta;
  int nstep;
  bool use_mad;
};

// Asymmetric search (make_qkx2_quants, and make_qkx3_quants with weights given;
// the two are identical then): fits x ~ scale * L + min with min <= 0 by weighted
// least squares at each candidate rounding and keeps the lowest error.
// weights [n] REQUIRED non-null. Writes L[i] in [0, nmax] and *neg_min = -min >= 0.
// Laux [n] is scratch. Returns scale (0 for a constant non-negative block).
float make_qkx_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                      float* neg_min, uint8_t* Laux, AsymSearch search);

// Quantizes non-negative values x (sub-block scales or mins) to L in [0, nmax]
// with one shared scale, weighted by quant_weights [n] (make_qp_quants): a scan of
// 8 neighbouring scales, then coordinate descent. Returns the shared scale.
float make_qp_quants(int n, int nmax, const float* x, uint8_t* L, const float* quant_weights);

}  // namespace sr::ggml_search
