// Ports of llama.cpp's scale searches. Every accumulation is a float in the same
// order as ggml-quants.c; products keep ggml's left-to-right grouping (w*x*l is
// (w*x)*l). This file must be compiled without FMA contraction (see src/CMakeLists.txt).
#include "quant/formats/ggml_quant_search.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace sr::ggml_search {
namespace {

// Sum of w*x*l and w*l*l for codes l = clamp(nearest_int(iscale*x), -nmax, nmax-1).
struct SymSums {
  float sumlx = 0;
  float suml2 = 0;
};

inline float qx_weight(const float* weights, const float* x, int i) {
  return weights ? weights[i] : x[i] * x[i];
}

inline int sym_code(float iscale, float x, int nmax) {
  int l = nearest_int(iscale * x);
  return std::max(-nmax, std::min(nmax - 1, l));
}

SymSums sym_sums(int n, int nmax, const float* x, const float* weights, float iscale) {
  SymSums s;
  for (int i = 0; i < n; ++i) {
    int l = sym_code(iscale, x[i], nmax);
    float w = qx_weight(weights, x, i);
    s.sumlx += w * x[i] * l;
    s.suml2 += w * l * l;
  }
  return s;
}

// The signed element of largest magnitude (first one on ties) and that magnitude.
void signed_absmax(int n, const float* x, float* max, float* amax) {
  *max = 0;
  *amax = 0;
  for (int i = 0; i < n; ++i) {
    float ax = std::fabs(x[i]);
    if (ax > *amax) {
      *amax = ax;
      *max = x[i];
    }
  }
}

// The group's signed absolute maximum into *max; false, with every code set to 0, when the
// group is all (near) zero, as llama.cpp's quantizers return early.
bool nonzero_group(int n, const float* x, int8_t* L, float* max) {
  float amax;
  signed_absmax(n, x, max, &amax);
  if (!(amax < kGroupMaxEps)) return true;  // (NaN: not a zero group, as in llama.cpp)
  std::fill(L, L + n, int8_t(0));
  return false;
}

}  // namespace

float make_qx_quants(int n, int nmax, const float* x, int8_t* L, const float* weights) {
  float max;
  if (!nonzero_group(n, x, L, &max)) return 0.f;
  float iscale = -nmax / max;
  for (int i = 0; i < n; ++i) L[i] = int8_t(sym_code(iscale, x[i], nmax) + nmax);
  SymSums s = sym_sums(n, nmax, x, weights, iscale);
  float scale = s.suml2 ? s.sumlx / s.suml2 : 0.0f;
  float best = scale * s.sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    SymSums t = sym_sums(n, nmax, x, weights, iscale);
    if (t.suml2 > 0 && t.sumlx * t.sumlx > best * t.suml2) {
      for (int i = 0; i < n; ++i) L[i] = int8_t(nmax + sym_code(iscale, x[i], nmax));
      scale = t.sumlx / t.suml2;
      best = scale * t.sumlx;
    }
  }
  return scale;
}

float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
  float max;
  if (!nonzero_group(n, x, L, &max)) return 0.f;
  float iscale = -nmax / max;
  float sumlx = 0;
  float suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = sym_code(iscale, x[i], nmax);
    L[i] = int8_t(l);
    float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  // Coordinate descent: move one code to its best value given all the others, and
  // keep the move if it raises (sum w x l)^2 / sum w l^2.
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * L[i];
      if (slx > 0) {
        float sl2 = suml2 - w * L[i] * L[i];
        int new_l = nearest_int(x[i] * sl2 / slx);
        new_l = std::max(-nmax, std::min(nmax - 1, new_l));
        if (new_l != L[i]) {
          slx += w * x[i] * new_l;
          sl2 += w * new_l * new_l;
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = int8_t(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (!n_changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
  return sumlx / suml2;
}

namespace {

inline float asym_error(float diff, bool use_mad) { return use_mad ? std::fabs(diff) : diff * diff; }

// Weighted error of x against scale*L + min.
float asym_total_error(int n, const float* x, const float* weights, const uint8_t* L, float scale,
                       float min, bool use_mad) {
  float err = 0;
  for (int i = 0; i < n; ++i) {
    float diff = scale * L[i] + min - x[i];
    err += weights[i] * asym_error(diff, use_mad);
  }
  return err;
}

}  // namespace

float make_qkx_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                      float* neg_min, uint8_t* Laux, AsymSearch search) {
  float min = x[0];
  float max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::fill(L, L + n, uint8_t(0));
    *neg_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * (x[i] - min));
    L[i] = uint8_t(std::max(0, std::min(nmax, l)));
  }
  float best_err = asym_total_error(n, x, weights, L, scale, min, search.use_mad);
  if (search.nstep < 1) {
    *neg_min = -min;
    return scale;
  }
  for (int is = 0; is <= search.nstep; ++is) {
    iscale = (search.rmin + search.rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = std::max(0, std::min(nmax, l));
      Laux[i] = uint8_t(l);
      float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      // Weighted least squares for x ~ this_scale * l + this_min, min forced <= 0.
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float err = asym_total_error(n, x, weights, Laux, this_scale, this_min, search.use_mad);
      if (err < best_err) {
        std::memcpy(L, Laux, size_t(n));
        best_err = err;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *neg_min = -min;
  return scale;
}

namespace {

float qp_error(int n, int nmax, const float* x, const float* qw, float iscale, float scale) {
  float mse = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::min(nmax, l);
    float diff = x[i] - scale * l;
    mse += qw[i] * diff * diff;
  }
  return mse;
}

}  // namespace

float make_qp_quants(int n, int nmax, const float* x, uint8_t* L, const float* quant_weights) {
  float max = 0;
  // ggml's MAX(a, b) is a > b ? a : b (it propagates a NaN x, std::max would not).
  for (int i = 0; i < n; ++i) max = max > x[i] ? max : x[i];
  if (!max) {
    std::fill(L, L + n, uint8_t(0));
    return 0.f;
  }
  float iscale = nmax / max;
  // ggml stores the unclamped code in a uint8_t here (wrapping a negative one) and
  // measures the starting error with it; keep that.
  for (int i = 0; i < n; ++i) L[i] = uint8_t(nearest_int(iscale * x[i]));
  float scale = 1 / iscale;
  float best_mse = 0;
  for (int i = 0; i < n; ++i) {
    float diff = x[i] - scale * L[i];
    best_mse += quant_weights[i] * diff * diff;
  }
  for (int is = -4; is <= 4; ++is) {
    if (is == 0) continue;
    float iscale_is = (0.1f * is + nmax) / max;
    float scale_is = 1 / iscale_is;
    float mse = qp_error(n, nmax, x, quant_weights, iscale_is, scale_is);
    if (mse < best_mse) {
      best_mse = mse;
      iscale = iscale_is;
    }
  }
  float sumlx = 0;
  float suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::min(nmax, l);
    L[i] = uint8_t(l);
    float w = quant_weights[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      float w = quant_weights[i];
      float slx = sumlx - w * x[i] * L[i];
      float sl2 = suml2 - w * L[i] * L[i];
      if (slx > 0 && sl2 > 0) {
        int new_l = nearest_int(x[i] * sl2 / slx);
        new_l = std::min(nmax, new_l);
        if (new_l != L[i]) {
          slx += w * x[i] * new_l;
          sl2 += w * new_l * new_l;
          if (slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = uint8_t(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (!n_changed) break;
  }
  return sumlx / suml2;
}

}  // namespace sr::ggml_search
