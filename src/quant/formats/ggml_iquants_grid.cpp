// ggml's lattice i-quants (ggml_iquants_grid.h). The float expressions follow ggml-quants.c
// (c392e50) operation for operation: a reassociated sum or a fused multiply-add changes the
// chosen grid points (this file is built with -ffp-contract=off).
#include "quant/formats/ggml_iquants_grid.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "quant/formats/ggml_iq_grids.h"
#include "quant/formats/ggml_quant_search.h"

namespace sr {
namespace {

using ggml_search::nearest_int;
using namespace iq_grids;

constexpr int kQk = 256;
constexpr float kIq1Delta = 0.125f;  // ggml's IQ1S_DELTA and IQ1M_DELTA

uint16_t load16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
uint32_t load32(const uint8_t* p) { return uint32_t(load16(p)) | uint32_t(load16(p + 2)) << 16; }
void store16(uint8_t* p, uint16_t v) { p[0] = uint8_t(v); p[1] = uint8_t(v >> 8); }
void store32(uint8_t* p, uint32_t v) { store16(p, uint16_t(v)); store16(p + 2, uint16_t(v >> 16)); }
float sign_of(uint32_t signs, int j) { return (signs >> j) & 1 ? -1.f : 1.f; }
uint8_t grid_byte(uint64_t point, int j) { return uint8_t(point >> (8 * j)); }

// ---- decoders ------------------------------------------------------------------------------

template <int kBlockBytes, typename F>
void for_blocks(const void* src, int64_t n, F f) {
  const auto* p = static_cast<const uint8_t*>(src);
  for (int64_t i = 0; i < n / kQk; ++i) f(p + i * kBlockBytes, i * kQk);
}

}  // namespace

void dequantize_row_iq2_xxs(const void* src, float* y, int64_t n) {
  for_blocks<66>(src, n, [&](const uint8_t* b, int64_t o) {
    const float d = f16_to_f32(load16(b));
    for (int ib = 0; ib < 8; ++ib) {
      const uint32_t a0 = load32(b + 2 + 8 * ib), a1 = load32(b + 6 + 8 * ib);
      const float db = d * (0.5f + float(a1 >> 28)) * 0.25f;
      for (int l = 0; l < 4; ++l) {
        const uint64_t g = iq2xxs_grid[(a0 >> 8 * l) & 255];
        const uint8_t s = ksigns((a1 >> 7 * l) & 127);
        for (int j = 0; j < 8; ++j) y[o + 32 * ib + 8 * l + j] = db * float(grid_byte(g, j)) * sign_of(s, j);
      }
    }
  });
}

void dequantize_row_iq2_xs(const void* src, float* y, int64_t n) {
  for_blocks<74>(src, n, [&](const uint8_t* b, int64_t o) {
    const float d = f16_to_f32(load16(b));
    for (int ib = 0; ib < 8; ++ib) {
      const float db[2] = {d * (0.5f + float(b[66 + ib] & 0xf)) * 0.25f, d * (0.5f + float(b[66 + ib] >> 4)) * 0.25f};
      for (int l = 0; l < 4; ++l) {
        const uint16_t q = load16(b + 2 + 2 * (4 * ib + l));
        const uint64_t g = iq2xs_grid[q & 511];
        const uint8_t s = ksigns(q >> 9);
        for (int j = 0; j < 8; ++j) y[o + 32 * ib + 8 * l + j] = db[l / 2] * float(grid_byte(g, j)) * sign_of(s, j);
      }
    }
  });
}

void dequantize_row_iq2_s(const void* src, float* y, int64_t n) {
  for_blocks<82>(src, n, [&](const uint8_t* b, int64_t o) {
    const float d = f16_to_f32(load16(b));
    const uint8_t *qs = b + 2, *signs = b + 34, *qh = b + 66, *scales = b + 74;
    for (int ib = 0; ib < 8; ++ib) {
      const float db[2] = {d * (0.5f + float(scales[ib] & 0xf)) * 0.25f, d * (0.5f + float(scales[ib] >> 4)) * 0.25f};
      for (int l = 0; l < 4; ++l) {
        const uint64_t g = iq2s_grid[qs[4 * ib + l] | ((qh[ib] << (8 - 2 * l)) & 0x300)];
        for (int j = 0; j < 8; ++j)
          y[o + 32 * ib + 8 * l + j] = db[l / 2] * float(grid_byte(g, j)) * sign_of(signs[4 * ib + l], j);
      }
    }
  });
}

void dequantize_row_iq3_xxs(const void* src, float* y, int64_t n) {
  for_blocks<98>(src, n, [&](const uint8_t* b, int64_t o) {
    const float d = f16_to_f32(load16(b));
    const uint8_t* qs = b + 2;
    for (int ib = 0; ib < 8; ++ib) {
      const uint32_t a = load32(b + 66 + 4 * ib);
      const float db = d * (0.5f + float(a >> 28)) * 0.5f;
      for (int l = 0; l < 4; ++l) {
        const uint8_t s = ksigns((a >> 7 * l) & 127);
        const uint32_t g1 = iq3xxs_grid[qs[8 * ib + 2 * l]], g2 = iq3xxs_grid[qs[8 * ib + 2 * l + 1]];
        float* yl = y + o + 32 * ib + 8 * l;
        for (int j = 0; j < 4; ++j) {
          yl[j] = db * float(grid_byte(g1, j)) * sign_of(s, j);
          yl[j + 4] = db * float(grid_byte(g2, j)) * sign_of(s, j + 4);
        }
      }
    }
  });
}

void dequantize_row_iq3_s(const void* src, float* y, int64_t n) {
  for_blocks<110>(src, n, [&](const uint8_t* b, int64_t o) {
    const float d = f16_to_f32(load16(b));
    const uint8_t *qs = b + 2, *qh = b + 66, *signs = b + 74, *scales = b + 106;
    for (int ib = 0; ib < 8; ++ib) {
      const int s = ib % 2 == 0 ? scales[ib / 2] & 0xf : scales[ib / 2] >> 4;
      const float db = d * float(1 + 2 * s);
      for (int l = 0; l < 4; ++l) {
        const uint32_t g1 = iq3s_grid[qs[8 * ib + 2 * l] | ((qh[ib] << (8 - 2 * l)) & 256)];
        const uint32_t g2 = iq3s_grid[qs[8 * ib + 2 * l + 1] | ((qh[ib] << (7 - 2 * l)) & 256)];
        const uint8_t sg = signs[4 * ib + l];
        float* yl = y + o + 32 * ib + 8 * l;
        for (int j = 0; j < 4; ++j) {
          yl[j] = db * float(grid_byte(g1, j)) * sign_of(sg, j);
          yl[j + 4] = db * float(grid_byte(g2, j)) * sign_of(sg, j + 4);
        }
      }
    }
  });
}

void dequantize_row_iq1_s(const void* src, float* y, int64_t n) {
  for_blocks<50>(src, n, [&](const uint8_t* b, int64_t o) {
    const float d = f16_to_f32(load16(b));
    for (int ib = 0; ib < 8; ++ib) {
      const uint16_t qh = load16(b + 34 + 2 * ib);
      const float dl = d * float(2 * ((qh >> 12) & 7) + 1);
      const float delta = qh & 0x8000 ? -kIq1Delta : kIq1Delta;
      for (int l = 0; l < 4; ++l) {
        const uint64_t g = iq1s_grid[b[2 + 4 * ib + l] | (((qh >> 3 * l) & 7) << 8)];
        for (int j = 0; j < 8; ++j) y[o + 32 * ib + 8 * l + j] = dl * (float(int8_t(grid_byte(g, j))) + delta);
      }
    }
  });
}

namespace {
uint16_t iq1_m_d_bits(const uint8_t* b) {
  const uint16_t sc[4] = {load16(b + 48), load16(b + 50), load16(b + 52), load16(b + 54)};
  return uint16_t((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
}
}  // namespace

bool iq1_m_block_finite(const uint8_t* block) { return (iq1_m_d_bits(block) & 0x7c00) != 0x7c00; }

void dequantize_row_iq1_m(const void* src, float* y, int64_t n) {
  for_blocks<56>(src, n, [&](const uint8_t* b, int64_t o) {
    const float d = f16_to_f32(iq1_m_d_bits(b));
    for (int ib = 0; ib < 8; ++ib) {
      const uint16_t sc = load16(b + 48 + 2 * (ib / 2));
      const float dl[2] = {d * float(2 * ((sc >> (6 * (ib % 2) + 0)) & 7) + 1),
                           d * float(2 * ((sc >> (6 * (ib % 2) + 3)) & 7) + 1)};
      for (int l = 0; l < 4; ++l) {
        const uint8_t h = uint8_t(b[32 + 2 * ib + l / 2] >> (4 * (l % 2)));
        const uint64_t g = iq1s_grid[b[4 * ib + l] | ((h & 7) << 8)];
        const float delta = h & 0x08 ? -kIq1Delta : kIq1Delta;
        for (int j = 0; j < 8; ++j) y[o + 32 * ib + 8 * l + j] = dl[l / 2] * (float(int8_t(grid_byte(g, j))) + delta);
      }
    }
  });
}

// ---- lattices and neighbour tables (ggml's iq2xs_init_impl / iq3xs_init_impl) ---------------

namespace {

// A grid as lattice points: coordinate j of point k is 2*l + 1 for the level l in [0, 2^bits);
// `map` takes a lattice point's packed levels (bits per coordinate, coordinate 0 lowest) to its
// grid index, or to -(offset + 1) into `neighbours`, where a count c is followed by the c grid
// points at the nwant smallest distances from it, ordered by (distance, index) as ggml's qsort.
struct Lattice {
  int dim = 0;
  std::vector<int8_t> pts;  // [grid size * dim]
  std::vector<int32_t> map;
  std::vector<uint16_t> neighbours;
  const int8_t* point(int k) const { return pts.data() + size_t(k) * size_t(dim); }
  const uint16_t* neighbours_of(uint32_t u) const { return neighbours.data() + (-map[u] - 1); }
};

template <typename LevelOf>
Lattice make_lattice(int grid_size, int dim, int bits, int nwant, LevelOf level_of) {
  Lattice g;
  g.dim = dim;
  g.pts.resize(size_t(grid_size) * size_t(dim));
  g.map.assign(size_t(1) << (bits * dim), -1);
  for (int k = 0; k < grid_size; ++k) {
    uint32_t u = 0;
    for (int j = 0; j < dim; ++j) {
      const int l = level_of(k, j);
      g.pts[size_t(k) * dim + j] = int8_t(2 * l + 1);
      u |= uint32_t(l) << (bits * j);
    }
    g.map[u] = k;
  }
  // The 2-bit grids use levels 0..2 only: packed values with a level 3 are never looked up.
  const int max_level = bits == 2 ? 2 : (1 << bits) - 1;
  std::vector<int> d2(grid_size);
  int8_t pos[8];
  for (uint32_t u = 0; u < g.map.size(); ++u) {
    if (g.map[u] >= 0) continue;
    bool valid = true;
    for (int j = 0; j < dim; ++j) {
      const int l = int(u >> (bits * j)) & ((1 << bits) - 1);
      valid &= l <= max_level;
      pos[j] = int8_t(2 * l + 1);
    }
    if (!valid) continue;
    int nearest[3] = {0, 0, 0};
    int have = 0;
    for (int k = 0; k < grid_size; ++k) {
      const int8_t* p = g.point(k);
      int s = 0;
      for (int j = 0; j < dim; ++j) s += (p[j] - pos[j]) * (p[j] - pos[j]);
      d2[k] = s;
      // The nwant smallest distinct distances, ascending.
      int i = 0;
      while (i < have && nearest[i] < s) ++i;
      if (i < have && nearest[i] == s) continue;
      if (i >= nwant) continue;
      for (int m = std::min(have, nwant - 1); m > i; --m) nearest[m] = nearest[m - 1];
      nearest[i] = s;
      have = std::min(have + 1, nwant);
    }
    g.map[u] = -int32_t(g.neighbours.size() + 1);
    const size_t count_at = g.neighbours.size();
    g.neighbours.push_back(0);
    for (int i = 0; i < have; ++i) {
      for (int k = 0; k < grid_size; ++k) {
        if (d2[k] == nearest[i]) g.neighbours.push_back(uint16_t(k));
      }
    }
    g.neighbours[count_at] = uint16_t(g.neighbours.size() - count_at - 1);
  }
  return g;
}

int level_iq2(uint64_t v, int j) {
  const uint8_t b = grid_byte(v, j);
  return b == 0x08 ? 0 : b == 0x19 ? 1 : 2;
}
int level_iq3xxs(uint32_t v, int j) {
  static const uint8_t kValues[8] = {4, 12, 20, 28, 36, 44, 52, 62};
  return int(std::find(kValues, kValues + 8, grid_byte(v, j)) - kValues);
}

const Lattice& lattice_iq2xxs() {
  static const Lattice g = make_lattice(256, 8, 2, 2, [](int k, int j) { return level_iq2(iq2xxs_grid[k], j); });
  return g;
}
const Lattice& lattice_iq2xs() {
  static const Lattice g = make_lattice(512, 8, 2, 2, [](int k, int j) { return level_iq2(iq2xs_grid[k], j); });
  return g;
}
const Lattice& lattice_iq2s() {
  static const Lattice g = make_lattice(1024, 8, 2, 1, [](int k, int j) { return level_iq2(iq2s_grid[k], j); });
  return g;
}
const Lattice& lattice_iq1() {
  static const Lattice g =
      make_lattice(2048, 8, 2, 3, [](int k, int j) { return int(int8_t(grid_byte(iq1s_grid[k], j))) + 1; });
  return g;
}
const Lattice& lattice_iq3xxs() {
  static const Lattice g = make_lattice(256, 4, 3, 2, [](int k, int j) { return level_iq3xxs(iq3xxs_grid[k], j); });
  return g;
}
const Lattice& lattice_iq3s() {
  static const Lattice g = make_lattice(512, 4, 3, 3, [](int k, int j) { return (grid_byte(iq3s_grid[k], j) - 1) / 2; });
  return g;
}

// ggml's iq2_find_best_neighbour / iq3_find_best_neighbour: the neighbour minimising
// sum w (scale*q - x)^2; writes its levels to L.
int best_neighbour(const Lattice& g, const uint16_t* nb, const float* xval, const float* w, float scale, int8_t* L) {
  float best_d2 = FLT_MAX;
  int index = -1;
  for (int j = 1; j <= nb[0]; ++j) {
    const int8_t* p = g.point(nb[j]);
    float d2 = 0;
    for (int i = 0; i < g.dim; ++i) {
      const float q = p[i];
      const float diff = scale * q - xval[i];
      d2 += w[i] * diff * diff;
    }
    if (d2 < best_d2) {
      best_d2 = d2;
      index = nb[j];
    }
  }
  SR_CHECK(index >= 0, "[ggml] i-quant neighbour search found no grid point (non-finite input?)");
  const int8_t* p = g.point(index);
  for (int i = 0; i < g.dim; ++i) L[i] = int8_t((p[i] - 1) / 2);
  return index;
}

// Grid index of the levels L[0..dim) (packed `bits` per level); a point off the grid is an error.
uint32_t pack_levels(const int8_t* L, int dim, int bits) {
  uint32_t u = 0;
  for (int i = 0; i < dim; ++i) u |= uint32_t(L[i]) << (bits * i);
  return u;
}
int on_grid_index(const Lattice& g, const int8_t* L, int bits) {
  const uint32_t u = pack_levels(L, g.dim, bits);
  // ggml aborts here ("Oops: found point not on grid"); only degenerate input gets here.
  SR_CHECK(u < g.map.size() && g.map[u] >= 0, "[ggml] i-quant encoder produced a point off its grid");
  return g.map[u];
}

float row_sigma2(const float* xbl, float factor) {
  float sumx2 = 0;
  for (int i = 0; i < kQk; ++i) sumx2 += xbl[i] * xbl[i];
  return factor * sumx2 / kQk;
}

// Absolute values into xval and sign bits per group of 8 into signs[k]. With `even_signs`,
// the group's least important element (smallest w x^2) is flipped when the count of negative
// ones is odd, so that 7 bits store the signs (IQ2_XXS, IQ2_XS, IQ3_XXS).
void split_signs(const float* xb, const float* weight, int n, bool even_signs, float* xval, uint8_t* signs) {
  for (int k = 0; k < n / 8; ++k) {
    int nflip = 0;
    uint8_t s = 0;
    for (int i = 0; i < 8; ++i) {
      if (xb[8 * k + i] >= 0) {
        xval[8 * k + i] = xb[8 * k + i];
      } else {
        xval[8 * k + i] = -xb[8 * k + i];
        ++nflip;
        s |= uint8_t(1 << i);
      }
    }
    if (even_signs && nflip % 2) {
      int imin = 0;
      float min = weight[8 * k] * xb[8 * k] * xb[8 * k];
      for (int i = 1; i < 8; ++i) {
        const float ax = weight[8 * k + i] * xb[8 * k + i] * xb[8 * k + i];
        if (ax < min) {
          min = ax;
          imin = i;
        }
      }
      xval[8 * k + imin] = -xval[8 * k + imin];
      s ^= uint8_t(1 << imin);
    }
    signs[k] = even_signs ? s & 127 : s;
  }
}

float max_of(const float* v, int n) {
  float m = v[0];
  for (int i = 1; i < n; ++i) m = m > v[i] ? m : v[i];
  return m;
}

// sum w x q and sum w q^2 with q = 2L + 1.
void odd_sums(const float* weight, const float* xval, const int8_t* L, int n, float* sumqx, float* sumq2) {
  *sumqx = 0;
  *sumq2 = 0;
  for (int i = 0; i < n; ++i) {
    const float w = weight[i];
    const float q = float(2 * L[i] + 1);
    *sumqx += w * xval[i] * q;
    *sumq2 += w * q * q;
  }
}

// Rounds xval/scale (inverse `id`) to levels in [0, kmax) for the group at L.
void round_levels(const float* xval, float id, int dim, int kmax, int8_t* L) {
  for (int i = 0; i < dim; ++i) {
    const int l = nearest_int(0.5f * (id * xval[i] - 1));
    L[i] = int8_t(std::max(0, std::min(kmax - 1, l)));
  }
}

// The grid point for the group xval [g.dim] at one scale (inverse id), the rounding both the
// encoders and the frozen path (SignRound) use: every coordinate rounded to its lattice level in
// [0, kmax); a point off the grid snapped to its best neighbour under the weights waux (ggml's
// iq2/iq3_find_best_neighbour). Writes the point's levels to L, returns its grid index, and
// whether the rounding itself was on the grid.
int nearest_grid_point(const Lattice& g, int bits, int kmax, const float* xval, const float* waux, float id,
                       float scale, int8_t* L, bool* on_grid) {
  round_levels(xval, id, g.dim, kmax, L);
  const uint32_t u = pack_levels(L, g.dim, bits);
  const int index = g.map[u];
  if (on_grid) *on_grid = index >= 0;
  return index >= 0 ? index : best_neighbour(g, g.neighbours_of(u), xval, waux, scale, L);
}

// The scale scan shared by IQ2_XS, IQ2_S, IQ3_XXS and IQ3_S (ggml's loop over `is`): for each
// candidate inverse scale (2 kmax - 1 + is * step) / max, round every group, snapping an
// off-grid group to its best neighbour, and keep the least-squares best scale, its levels L and
// which groups were on the grid. `scale` enters as the fallback (kept when nothing improves).
struct ScanState {
  int8_t L[32];
  bool on_grid[8];
};
void scale_scan(const Lattice& g, int bits, int kmax, int n, const float* xval, const float* weight, const float* waux,
                float max, int is_range, float step, float* scale, ScanState* st) {
  const int groups = n / g.dim;
  int8_t Laux[32];
  bool on_aux[8];
  float best = 0;
  for (int is = -is_range; is <= is_range; ++is) {
    const float id = (2 * kmax - 1 + is * step) / max;
    const float this_scale = 1 / id;
    for (int k = 0; k < groups; ++k) {
      nearest_grid_point(g, bits, kmax, xval + g.dim * k, waux + g.dim * k, id, this_scale, Laux + g.dim * k,
                         &on_aux[k]);
    }
    float sumqx, sumq2;
    odd_sums(weight, xval, Laux, n, &sumqx, &sumq2);
    if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
      *scale = sumqx / sumq2;
      best = *scale * sumqx;
      std::memcpy(st->L, Laux, size_t(n));
      std::memcpy(st->on_grid, on_aux, size_t(groups));
    }
  }
}

// Re-rounds the groups at the final scale (those off the grid, or all with `all_groups`),
// snapping to neighbours, then refits the scale by least squares (ggml's second pass).
// `snap_on_grid`: L of an on-grid group is its grid point's levels (IQ3), else the rounding.
void refit(const Lattice& g, int bits, int kmax, int n, const float* xval, const float* weight, const float* waux,
           bool all_groups, float* scale, ScanState* st) {
  const int groups = n / g.dim;
  int off = 0;
  for (int k = 0; k < groups; ++k) off += !st->on_grid[k];
  if (off == 0 || !(*scale > 0)) return;
  const float id = 1 / *scale;
  for (int k = 0; k < groups; ++k) {
    if (!all_groups && st->on_grid[k]) continue;
    nearest_grid_point(g, bits, kmax, xval + g.dim * k, waux + g.dim * k, id, *scale, st->L + g.dim * k, nullptr);
  }
  float sumqx, sumq2;
  odd_sums(weight, xval, st->L, n, &sumqx, &sumq2);
  if (sumq2 > 0) *scale = sumqx / sumq2;
}

void sub_block_weights(const float* xb, const float* qw, float sigma2, int n, float* weight) {
  for (int i = 0; i < n; ++i) weight[i] = qw[i] * std::sqrt(sigma2 + xb[i] * xb[i]);
}

int scale_code(float id, float scale, int max_code) {
  const int l = nearest_int(0.5f * (id * scale - 1));
  return std::max(0, std::min(max_code, l));
}

[[noreturn]] void refuse_without_imatrix(const char* type) {
  fail("[ggml] ", type,
       " needs an importance matrix, as in llama.cpp (\"Missing importance matrix in a very low-bit "
       "quantization: the result will be garbage\"; llama-quantize: \"Please do not use IQ1_S, IQ1_M, IQ2_S, "
       "IQ2_XXS, IQ2_XS or Q2_K_S quantization without an importance matrix\")");
}

void require_weights(const float* w, const char* type) {
  if (!w) refuse_without_imatrix(type);
}

// ---- IQ2_XXS ---------------------------------------------------------------------------------

void iq2_xxs_block(const float* xbl, const float* qwl, uint8_t* y) {
  const Lattice& g = lattice_iq2xxs();
  std::memset(y, 0, 66);
  uint32_t q2[16] = {};
  float scales[8];
  float max_scale = 0;
  const float sigma2 = row_sigma2(xbl, 1.f);
  for (int ib = 0; ib < 8; ++ib) {
    const float* xb = xbl + 32 * ib;
    float weight[32], waux[32], xval[32];
    uint8_t signs[4];
    sub_block_weights(xb, qwl + 32 * ib, sigma2, 32, weight);
    for (int i = 0; i < 32; ++i) waux[i] = std::sqrt(weight[i]);
    split_signs(xb, weight, 32, true, xval, signs);
    const float max = max_of(xval, 32);
    if (max < ggml_search::kGroupMaxEps) {
      scales[ib] = 0;
      continue;
    }
    ScanState st{};
    float scale = ggml_search::make_qp_quants(32, 4, xval, reinterpret_cast<uint8_t*>(st.L), weight);
    // The scan: candidates around 5/(3 * scale), neighbours as in scale_scan.
    const float eff_max = scale * 3;
    scale_scan(g, 2, 3, 32, xval, weight, waux, eff_max, 6, 0.1f, &scale, &st);
    if (scale > 0) {
      const float id = 1 / scale;
      for (int k = 0; k < 4; ++k) {
        nearest_grid_point(g, 2, 3, xval + 8 * k, waux + 8 * k, id, scale, st.L + 8 * k, nullptr);
      }
      float sumqx, sumq2;
      odd_sums(weight, xval, st.L, 32, &sumqx, &sumq2);
      if (sumq2 > 0) scale = sumqx / sumq2;
    }
    if (scale < 0) {
      scale = -scale;
      for (int k = 0; k < 4; ++k) signs[k] = ~signs[k] & 127;
    }
    for (int k = 0; k < 4; ++k) {
      q2[2 * ib] |= uint32_t(on_grid_index(g, st.L + 8 * k, 2)) << 8 * k;
      q2[2 * ib + 1] |= uint32_t(signs[k]) << 7 * k;
    }
    scales[ib] = scale;
    max_scale = max_scale > scale ? max_scale : scale;
  }
  if (!max_scale) return;
  const float d = max_scale / 31;
  store16(y, f32_to_f16(d));
  const float id = 1 / d;
  for (int ib = 0; ib < 8; ++ib) q2[2 * ib + 1] |= uint32_t(scale_code(id, scales[ib], 15)) << 28;
  for (int i = 0; i < 16; ++i) store32(y + 2 + 4 * i, q2[i]);
}

// ---- IQ2_XS and IQ2_S (16-element sub-blocks) --------------------------------------------------

// One super-block of IQ2_XS (is_s false) or IQ2_S.
void iq2_16_block(bool is_s, const float* xbl, const float* qwl, uint8_t* y) {
  const Lattice& g = is_s ? lattice_iq2s() : lattice_iq2xs();
  const int bytes = is_s ? 82 : 74;
  std::memset(y, 0, size_t(bytes));
  uint8_t* scale_bytes = y + (is_s ? 74 : 66);
  float scales[16];
  float max_scale = 0;
  const float sigma2 = row_sigma2(xbl, is_s ? 2.f : 1.f);
  for (int ib = 0; ib < 16; ++ib) {
    const float* xb = xbl + 16 * ib;
    float weight[16], waux[16], xval[16];
    uint8_t signs[2];
    sub_block_weights(xb, qwl + 16 * ib, sigma2, 16, weight);
    for (int i = 0; i < 16; ++i) waux[i] = std::sqrt(weight[i]);
    split_signs(xb, weight, 16, !is_s, xval, signs);
    const float max = max_of(xval, 16);
    if (max < (is_s ? 1e-8f : ggml_search::kGroupMaxEps)) {
      scales[ib] = 0;
      continue;
    }
    ScanState st{};
    st.on_grid[0] = st.on_grid[1] = true;
    float scale = max / 5;
    scale_scan(g, 2, 3, 16, xval, weight, waux, max, 9, 0.1f, &scale, &st);
    refit(g, 2, 3, 16, xval, weight, waux, false, &scale, &st);
    if (scale < 0) {
      scale = -scale;
      for (int k = 0; k < 2; ++k) signs[k] = is_s ? uint8_t(~signs[k]) : ~signs[k] & 127;
    }
    for (int k = 0; k < 2; ++k) {
      const int index = on_grid_index(g, st.L + 8 * k, 2);
      const int i8 = 2 * ib + k;
      if (is_s) {
        y[2 + i8] = uint8_t(index & 255);
        y[66 + i8 / 4] |= uint8_t((index >> 8) << 2 * (i8 % 4));
        y[34 + i8] = signs[k];
      } else {
        store16(y + 2 + 2 * i8, uint16_t(index | (signs[k] << 9)));
      }
    }
    scales[ib] = scale;
    max_scale = max_scale > scale ? max_scale : scale;
  }
  if (!max_scale) {
    if (!is_s) std::memset(y + 2, 0, 64);  // ggml clears IQ2_XS's codes; IQ2_S keeps what it wrote
    return;
  }
  const float d = max_scale / 31;
  store16(y, f32_to_f16(is_s ? d * 0.9875f : d));
  const float id = 1 / d;
  for (int ib = 0; ib < 16; ++ib) {
    const int l = scale_code(id, scales[ib], 15);
    scale_bytes[ib / 2] = ib % 2 == 0 ? uint8_t(l) : uint8_t(scale_bytes[ib / 2] | (l << 4));
  }
}

// ---- IQ3_XXS and IQ3_S ----------------------------------------------------------------------

// IQ3_XXS keeps the scan state across sub-blocks as ggml does (its on-grid flags are not
// reset before the scan); `st` is that state.
void iq3_xxs_block(const float* xbl, const float* qwl, uint8_t* y, ScanState* st) {
  const Lattice& g = lattice_iq3xxs();
  std::memset(y, 0, 98);
  uint8_t q3[96] = {};
  float scales[8];
  float max_scale = 0;
  const float sigma2 = row_sigma2(xbl, 2.f);
  for (int ib = 0; ib < 8; ++ib) {
    const float* xb = xbl + 32 * ib;
    float weight[32], waux[32], xval[32];
    uint8_t signs[4];
    if (qwl) {
      sub_block_weights(xb, qwl + 32 * ib, sigma2, 32, weight);
    } else {
      for (int i = 0; i < 32; ++i) weight[i] = xb[i] * xb[i];
    }
    for (int i = 0; i < 32; ++i) waux[i] = std::sqrt(weight[i]);
    split_signs(xb, weight, 32, true, xval, signs);
    const float max = max_of(xval, 32);
    if (max < 1e-8f) {
      scales[ib] = 0;
      std::memset(st->L, 0, 32);
      continue;
    }
    float scale = max / 15;
    scale_scan(g, 3, 8, 32, xval, weight, waux, max, 15, 0.2f, &scale, st);
    // ggml's second pass: off-grid groups re-rounded, every re-rounded group then takes its
    // grid point's levels.
    int off = 0;
    for (int k = 0; k < 8; ++k) off += !st->on_grid[k];
    if (off > 0 && scale > 0) {
      const float id = 1 / scale;
      for (int k = 0; k < 8; ++k) {
        if (st->on_grid[k]) continue;
        nearest_grid_point(g, 3, 8, xval + 4 * k, waux + 4 * k, id, scale, st->L + 4 * k, nullptr);
      }
      float sumqx, sumq2;
      odd_sums(weight, xval, st->L, 32, &sumqx, &sumq2);
      if (sumq2 > 0) scale = sumqx / sumq2;
    }
    if (scale < 0) {
      scale = -scale;
      for (int k = 0; k < 4; ++k) signs[k] = ~signs[k] & 127;
    }
    for (int k = 0; k < 8; ++k) q3[8 * ib + k] = uint8_t(on_grid_index(g, st->L + 4 * k, 3));
    store32(q3 + 64 + 4 * ib, uint32_t(signs[0]) | uint32_t(signs[1]) << 7 | uint32_t(signs[2]) << 14 |
                                  uint32_t(signs[3]) << 21);
    scales[ib] = scale;
    max_scale = max_scale > scale ? max_scale : scale;
  }
  if (!max_scale) return;
  const float d = max_scale / 31;
  store16(y, f32_to_f16(d * 1.0125f));
  const float id = 1 / d;
  for (int ib = 0; ib < 8; ++ib) {
    store32(q3 + 64 + 4 * ib, load32(q3 + 64 + 4 * ib) | uint32_t(scale_code(id, scales[ib], 15)) << 28);
  }
  std::memcpy(y + 2, q3, 96);
}

void iq3_s_block(const float* xbl, const float* qwl, uint8_t* y, ScanState* st) {
  const Lattice& g = lattice_iq3s();
  std::memset(y, 0, 110);
  uint8_t *qs = y + 2, *qh = y + 66, *signs_out = y + 74, *scale_bytes = y + 106;
  float scales[8];
  float max_scale = 0;
  const float sigma2 = row_sigma2(xbl, 2.f);
  for (int ib = 0; ib < 8; ++ib) {
    const float* xb = xbl + 32 * ib;
    float weight[32], waux[32], xval[32];
    uint8_t signs[4];
    if (qwl) {
      sub_block_weights(xb, qwl + 32 * ib, sigma2, 32, weight);
    } else {
      for (int i = 0; i < 32; ++i) weight[i] = xb[i] * xb[i];
    }
    for (int i = 0; i < 32; ++i) waux[i] = std::sqrt(weight[i]);
    split_signs(xb, weight, 32, false, xval, signs);
    const float max = max_of(xval, 32);
    if (!max) {
      scales[ib] = 0;
      continue;
    }
    float scale = max / 15;
    for (bool& b : st->on_grid) b = false;
    scale_scan(g, 3, 8, 32, xval, weight, waux, max, 9, 0.2f, &scale, st);
    // ggml re-rounds every group here once any is off the grid; each then takes its grid
    // point's levels.
    int off = 0;
    for (int k = 0; k < 8; ++k) off += !st->on_grid[k];
    if (off > 0 && scale > 0) {
      const float id = 1 / scale;
      for (int k = 0; k < 8; ++k) {
        nearest_grid_point(g, 3, 8, xval + 4 * k, waux + 4 * k, id, scale, st->L + 4 * k, nullptr);
      }
      float sumqx, sumq2;
      odd_sums(weight, xval, st->L, 32, &sumqx, &sumq2);
      if (sumq2 > 0) scale = sumqx / sumq2;
    }
    if (scale < 0) {
      scale = -scale;
      for (int k = 0; k < 4; ++k) signs[k] = uint8_t(~signs[k]);
    }
    for (int k = 0; k < 8; ++k) {
      const int index = on_grid_index(g, st->L + 4 * k, 3);
      qs[8 * ib + k] = uint8_t(index & 255);
      qh[ib] |= uint8_t((index >> 8) << k);
    }
    for (int k = 0; k < 4; ++k) signs_out[4 * ib + k] = signs[k];
    scales[ib] = scale;
    max_scale = max_scale > scale ? max_scale : scale;
  }
  if (!max_scale) return;
  const float d = max_scale / 31;
  store16(y, f32_to_f16(d * 1.033f));
  const float id = 1 / d;
  for (int ib = 0; ib < 8; ib += 2) {
    scale_bytes[ib / 2] = uint8_t(scale_code(id, scales[ib], 15) | (scale_code(id, scales[ib + 1], 15) << 4));
  }
}

// ---- IQ1_S and IQ1_M ----------------------------------------------------------------------

// ggml's iq1_find_best_neighbour2: the neighbour minimising sum w (scale*xg[l] - x)^2.
int iq1_best_neighbour(const Lattice& g, const uint16_t* nb, const float* xval, const float* w, float scale,
                       const float* xg, int8_t* L) {
  float best = FLT_MAX;
  int index = -1;
  for (int j = 1; j <= nb[0]; ++j) {
    const int8_t* p = g.point(nb[j]);
    float d2 = 0;
    for (int i = 0; i < 8; ++i) {
      const float q = xg[(p[i] - 1) / 2];
      const float diff = scale * q - xval[i];
      d2 += w[i] * diff * diff;
    }
    if (d2 < best) {
      best = d2;
      index = nb[j];
    }
  }
  SR_CHECK(index >= 0, "[ggml] IQ1 neighbour search found no grid point (non-finite input?)");
  const int8_t* p = g.point(index);
  for (int i = 0; i < 8; ++i) L[i] = int8_t((p[i] - 1) / 2);
  return index;
}

// Element indices of xb [n] by ascending value (ggml sorts (value, index) pairs by value with
// qsort, a merge sort for arrays this small: ties keep index order).
void sort_by_value(const float* xb, int n, int* order) {
  for (int j = 0; j < n; ++j) order[j] = j;
  std::stable_sort(order, order + n, [&](int a, int b) { return xb[a] < xb[b]; });
}

const float kXp[3] = {-1 + kIq1Delta, kIq1Delta, 1 + kIq1Delta};
const float kXm[3] = {-1 - kIq1Delta, -kIq1Delta, 1 - kIq1Delta};

struct Iq1State {
  int8_t shifts[16] = {};  // ggml's scratch: kept across sub-blocks (see the header)
};

void iq1_s_block(const float* xbl, const float* qwl, uint8_t* y, Iq1State* state) {
  const Lattice& g = lattice_iq1();
  std::memset(y, 0, 50);
  float scales[8];
  float max_scale = 0;
  const float sigma2 = row_sigma2(xbl, 2.f);
  for (int ib = 0; ib < 8; ++ib) {
    const float* xb = xbl + 32 * ib;
    float weight[32];
    sub_block_weights(xb, qwl + 32 * ib, sigma2, 32, weight);
    float max = std::fabs(xb[0]);
    for (int i = 1; i < 32; ++i) max = max > std::fabs(xb[i]) ? max : std::fabs(xb[i]);
    if (max < 1e-12f) {
      scales[ib] = 0;
      continue;
    }
    int order[32];
    sort_by_value(xb, 32, order);
    float sumx[33], sumw[33];
    sumx[0] = sumw[0] = 0;
    for (int j = 0; j < 32; ++j) {
      const int i = order[j];
      sumx[j + 1] = sumx[j] + weight[i] * xb[i];
      sumw[j + 1] = sumw[j] + weight[i];
    }
    float best_score = -FLT_MIN, scale = max;
    int besti1 = -1, besti2 = -1, best_shift = 0;
    for (int i1 = 0; i1 <= 32; ++i1) {
      for (int i2 = i1; i2 <= 32; ++i2) {
        for (int shift : {1, -1}) {
          const float* xs = shift == 1 ? kXp : kXm;
          const float sumqx = (sumx[i1] - sumx[0]) * xs[0] + (sumx[i2] - sumx[i1]) * xs[1] + (sumx[32] - sumx[i2]) * xs[2];
          const float sumq2 = (sumw[i1] - sumw[0]) * xs[0] * xs[0] + (sumw[i2] - sumw[i1]) * xs[1] * xs[1] +
                              (sumw[32] - sumw[i2]) * xs[2] * xs[2];
          if (sumq2 > 0 && sumqx * sumqx > best_score * sumq2) {
            scale = sumqx / sumq2;
            best_score = scale * sumqx;
            besti1 = i1;
            besti2 = i2;
            best_shift = shift;
          }
        }
      }
    }
    SR_CHECK(besti1 >= 0, "[ggml] IQ1_S found no split (non-finite input or importance?)");
    int8_t L[32];
    for (int j = 0; j < 32; ++j) L[order[j]] = int8_t(j < besti1 ? 0 : j < besti2 ? 1 : 2);
    if (scale < 0) {
      for (int j = 0; j < 32; ++j) L[j] = int8_t(2 - L[j]);
      scale = -scale;
      best_shift = -best_shift;
    }
    const float* xx = best_shift == 1 ? kXp : kXm;
    bool all_on_grid = true;
    int index[4];
    for (int k = 0; k < 4; ++k) {
      const uint32_t u = pack_levels(L + 8 * k, 8, 2);
      index[k] = g.map[u];
      if (index[k] < 0) {
        all_on_grid = false;
        index[k] = iq1_best_neighbour(g, g.neighbours_of(u), xb + 8 * k, weight + 8 * k, scale, xx, L + 8 * k);
      }
    }
    if (!all_on_grid) {
      float sumqx = 0, sumq2 = 0;
      for (int k = 0; k < 4; ++k) {
        const int8_t* p = g.point(index[k]);
        for (int j = 0; j < 8; ++j) {
          const float w = weight[8 * k + j];
          const float q = xx[(p[j] - 1) / 2];
          sumqx += w * q * xb[8 * k + j];
          sumq2 += w * q * q;
        }
      }
      if (sumqx > 0 && sumq2 > 0) scale = sumqx / sumq2;
    }
    uint16_t h = 0;
    for (int k = 0; k < 4; ++k) {
      y[2 + 4 * ib + k] = uint8_t(index[k] & 255);
      h = uint16_t(h | ((index[k] >> 8) << 3 * k));
    }
    store16(y + 34 + 2 * ib, h);
    scales[ib] = scale;
    state->shifts[ib] = int8_t(best_shift);
    max_scale = max_scale > scale ? max_scale : scale;
  }
  if (!max_scale) return;
  const float d = max_scale / 15;
  store16(y, f32_to_f16(d * 1.125f));
  const float id = 1 / d;
  for (int ib = 0; ib < 8; ++ib) {
    int l = scale_code(id, scales[ib], 7);
    if (state->shifts[ib] == -1) l |= 8;
    store16(y + 34 + 2 * ib, uint16_t(load16(y + 34 + 2 * ib) | (l << 12)));
  }
}

void iq1_m_weights(const float* xb, const float* qw, float sigma2, float* weight) {
  if (qw) {
    sub_block_weights(xb, qw, sigma2, 16, weight);
  } else {
    for (int i = 0; i < 16; ++i) weight[i] = xb[i] * xb[i];
  }
}

void iq1_m_block(const float* xbl, const float* qwl, uint8_t* y, Iq1State* state) {
  const Lattice& g = lattice_iq1();
  std::memset(y, 0, 56);
  uint8_t *qs = y, *qh = y + 32;
  static const uint8_t kMasks[4] = {0x00, 0x80, 0x08, 0x88};
  float scales[16];
  float max_scale = 0;
  const float sigma2 = row_sigma2(xbl, 2.f);
  // best_k: bit 1 = the first 8 elements take the negative delta, bit 0 = the last 8.
  auto xs_of = [](int best_k, int k) { return (k == 0 ? best_k < 2 : best_k % 2 == 0) ? kXp : kXm; };
  for (int ib = 0; ib < 16; ++ib) {
    const float* xb = xbl + 16 * ib;
    float weight[16];
    iq1_m_weights(xb, qwl ? qwl + 16 * ib : nullptr, sigma2, weight);
    float max = std::fabs(xb[0]);
    for (int i = 1; i < 16; ++i) max = max > std::fabs(xb[i]) ? max : std::fabs(xb[i]);
    if (max < 1e-7f) {
      scales[ib] = 0;
      continue;
    }
    int order[16];
    sort_by_value(xb, 16, order);
    float best_score = -FLT_MIN, scale = max;
    int besti1 = -1, besti2 = -1, best_k = -1;
    for (int i1 = 0; i1 <= 16; ++i1) {
      for (int i2 = i1; i2 <= 16; ++i2) {
        float sumqx[4] = {0, 0, 0, 0}, sumq2[4] = {0, 0, 0, 0};
        for (int j = 0; j < 16; ++j) {
          const int level = j < i1 ? 0 : j < i2 ? 1 : 2;
          const int i = order[j];
          const float p = kXp[level], m = kXm[level];
          // Candidates k whose half of element i takes x_p: both halves for k = 0; the first
          // for k = 1, the second for k = 2.
          const bool first = i < 8;
          const float a[4] = {p, first ? p : m, first ? m : p, m};
          for (int k = 0; k < 4; ++k) {
            sumqx[k] += weight[i] * a[k] * xb[i];
            sumq2[k] += weight[i] * a[k] * a[k];
          }
        }
        for (int k = 0; k < 4; ++k) {
          if (sumq2[k] > 0 && sumqx[k] * sumqx[k] > best_score * sumq2[k]) {
            scale = sumqx[k] / sumq2[k];
            best_score = scale * sumqx[k];
            besti1 = i1;
            besti2 = i2;
            best_k = k;
          }
        }
      }
    }
    SR_CHECK(besti1 >= 0, "[ggml] IQ1_M found no split (non-finite input or importance?)");
    int8_t L[16];
    for (int j = 0; j < 16; ++j) L[order[j]] = int8_t(j < besti1 ? 0 : j < besti2 ? 1 : 2);
    if (scale < 0) {
      for (int j = 0; j < 16; ++j) L[j] = int8_t(2 - L[j]);
      scale = -scale;
      best_k = 3 - best_k;
    }
    bool all_on_grid = true;
    int index[2];
    for (int k = 0; k < 2; ++k) {
      const uint32_t u = pack_levels(L + 8 * k, 8, 2);
      index[k] = g.map[u];
      if (index[k] < 0) {
        all_on_grid = false;
        index[k] = iq1_best_neighbour(g, g.neighbours_of(u), xb + 8 * k, weight + 8 * k, scale, xs_of(best_k, k),
                                      L + 8 * k);
      }
    }
    if (!all_on_grid) {
      float sumqx = 0, sumq2 = 0;
      for (int k = 0; k < 2; ++k) {
        const float* xx = xs_of(best_k, k);
        const int8_t* p = g.point(index[k]);
        for (int j = 0; j < 8; ++j) {
          const float w = weight[8 * k + j];
          const float q = xx[(p[j] - 1) / 2];
          sumqx += w * q * xb[8 * k + j];
          sumq2 += w * q * q;
        }
      }
      if (sumqx > 0 && sumq2 > 0) scale = sumqx / sumq2;
    }
    qs[2 * ib] = uint8_t(index[0] & 255);
    qs[2 * ib + 1] = uint8_t(index[1] & 255);
    qh[ib] = uint8_t((index[0] >> 8) | ((index[1] >> 8) << 4));
    scales[ib] = scale;
    state->shifts[ib] = int8_t(best_k);
    max_scale = max_scale > scale ? max_scale : scale;
  }
  if (!max_scale) return;
  uint16_t sc[4] = {0, 0, 0, 0};
  float d = max_scale / 15;
  const float id = 1 / d;
  float sumqx = 0, sumq2 = 0;
  for (int ib = 0; ib < 16; ++ib) {
    const int l = scale_code(id, scales[ib], 7);
    sc[ib / 4] = uint16_t(sc[ib / 4] | (l << 3 * (ib % 4)));
    qh[ib] |= kMasks[state->shifts[ib]];
    const float* xb = xbl + 16 * ib;
    float weight[16];
    iq1_m_weights(xb, qwl ? qwl + 16 * ib : nullptr, sigma2, weight);
    for (int k = 0; k < 2; ++k) {
      const float* xx = xs_of(state->shifts[ib], k);
      const int8_t* p = g.point(qs[2 * ib + k] + ((qh[ib] << (8 - 4 * k)) & 0x700));
      for (int j = 0; j < 8; ++j) {
        const float w = weight[8 * k + j];
        const float q = xx[(p[j] - 1) / 2] * float(2 * l + 1);
        sumqx += w * q * xb[8 * k + j];
        sumq2 += w * q * q;
      }
    }
  }
  if (sumq2 > 0) d = sumqx / sumq2;
  const uint16_t s = f32_to_f16(d * 1.1125f);
  sc[0] = uint16_t(sc[0] | ((s & 0x000f) << 12));
  sc[1] = uint16_t(sc[1] | ((s & 0x00f0) << 8));
  sc[2] = uint16_t(sc[2] | ((s & 0x0f00) << 4));
  sc[3] = uint16_t(sc[3] | (s & 0xf000));
  for (int i = 0; i < 4; ++i) store16(y + 48 + 2 * i, sc[i]);
}

void check_row(int64_t n, const char* type) {
  SR_CHECK(n % kQk == 0, "[ggml] a ", type, " row needs a multiple of 256 elements, got ", n);
}

// One row, 256-element block by block: block(x, w, y) with w the block's importances (null for
// the ref entries, which pass weighted = false). Every entry point below is this loop.
template <class Block>
void encode_row(const char* type, uint32_t bytes, bool weighted, const float* x, void* dst, int64_t n, const float* w,
                Block block) {
  check_row(n, type);
  if (weighted) require_weights(w, type);
  auto* y = static_cast<uint8_t*>(dst);
  for (int64_t i = 0; i < n / kQk; ++i) block(x + i * kQk, weighted ? w + i * kQk : nullptr, y + i * bytes);
}

}  // namespace

// ---- row entry points -------------------------------------------------------------------------
// The scan state (ScanState, Iq1State) lives for one row, as in ggml's quantize_iq*.

void quantize_row_iq2_xxs_weighted(const float* x, void* dst, int64_t n, const float* w) {
  encode_row("iq2_xxs", 66, true, x, dst, n, w, [](auto xb, auto wb, auto yb) { iq2_xxs_block(xb, wb, yb); });
}
void quantize_row_iq2_xs_weighted(const float* x, void* dst, int64_t n, const float* w) {
  encode_row("iq2_xs", 74, true, x, dst, n, w, [](auto xb, auto wb, auto yb) { iq2_16_block(false, xb, wb, yb); });
}
void quantize_row_iq2_s_weighted(const float* x, void* dst, int64_t n, const float* w) {
  encode_row("iq2_s", 82, true, x, dst, n, w, [](auto xb, auto wb, auto yb) { iq2_16_block(true, xb, wb, yb); });
}
void quantize_row_iq3_xxs_weighted(const float* x, void* dst, int64_t n, const float* w) {
  ScanState st{};
  encode_row("iq3_xxs", 98, true, x, dst, n, w, [&](auto xb, auto wb, auto yb) { iq3_xxs_block(xb, wb, yb, &st); });
}
void quantize_row_iq3_xxs_ref(const float* x, void* dst, int64_t n) {
  ScanState st{};
  encode_row("iq3_xxs", 98, false, x, dst, n, nullptr, [&](auto xb, auto wb, auto yb) { iq3_xxs_block(xb, wb, yb, &st); });
}
void quantize_row_iq3_s_weighted(const float* x, void* dst, int64_t n, const float* w) {
  ScanState st{};
  encode_row("iq3_s", 110, true, x, dst, n, w, [&](auto xb, auto wb, auto yb) { iq3_s_block(xb, wb, yb, &st); });
}
void quantize_row_iq3_s_ref(const float* x, void* dst, int64_t n) {
  ScanState st{};
  encode_row("iq3_s", 110, false, x, dst, n, nullptr, [&](auto xb, auto wb, auto yb) { iq3_s_block(xb, wb, yb, &st); });
}
void quantize_row_iq1_s_weighted(const float* x, void* dst, int64_t n, const float* w) {
  Iq1State st;
  encode_row("iq1_s", 50, true, x, dst, n, w, [&](auto xb, auto wb, auto yb) { iq1_s_block(xb, wb, yb, &st); });
}
void quantize_row_iq1_m_weighted(const float* x, void* dst, int64_t n, const float* w) {
  Iq1State st;
  encode_row("iq1_m", 56, true, x, dst, n, w, [&](auto xb, auto wb, auto yb) { iq1_m_block(xb, wb, yb, &st); });
}
void quantize_row_iq2_xxs_ref(const float*, void*, int64_t) { refuse_without_imatrix("iq2_xxs"); }
void quantize_row_iq2_xs_ref(const float*, void*, int64_t) { refuse_without_imatrix("iq2_xs"); }
void quantize_row_iq2_s_ref(const float*, void*, int64_t) { refuse_without_imatrix("iq2_s"); }
void quantize_row_iq1_s_ref(const float*, void*, int64_t) { refuse_without_imatrix("iq1_s"); }
// ggml's quantize_iq1_m accepts no importances (weights x², as iq1_m_weights); llama-quantize uses
// that for output / token_embd and refuses IQ1_M without an imatrix only inside the blocks.
void quantize_row_iq1_m_ref(const float* x, void* dst, int64_t n) {
  Iq1State st;
  encode_row("iq1_m", 56, false, x, dst, n, nullptr, [&](auto xb, auto wb, auto yb) { iq1_m_block(xb, wb, yb, &st); });
}

}  // namespace sr

// ---- frozen scales, tunable rounding (the header's contract) ---------------------------------

namespace sr {
namespace {

// One super-block's stored choices, unpacked: what the frozen path keeps (d, db, IQ1's delta
// signs) and what it re-chooses (grid index per group, 8 sign bits per 8 elements).
struct GridCodes {
  float d = 0;
  float db[16] = {};         // per sub-block, with the decoder's fp32 operations
  uint16_t index[64] = {};   // per group of dim elements
  uint8_t signs[32] = {};    // per 8 elements, bit j set: element j negative (7-bit types expanded)
  bool delta_neg[32] = {};   // IQ1, per group of 8
};

enum class SignBits : uint8_t { kNone, kEven7, kFull8 };

// One row of the table: the layout facts the frozen path needs.
struct GridSpec {
  GgmlType type;
  uint32_t bytes;
  int dim, bits, kmax;  // group size, bits per packed lattice level, levels per coordinate
  int sub;              // elements per sub-block scale
  float unit;           // odd-unit scale = unit * db (IQ1: level-unit scale = db)
  SignBits signs;
  float sigma_factor;   // sigma2 = factor * mean x^2 over the super-block
  const Lattice& (*lattice)();
  void (*unpack)(const uint8_t* b, GridCodes* c);
  void (*pack)(const GridCodes& c, uint8_t* b);  // grid indices and signs only
  void (*dequantize)(const void* blocks, float* y, int64_t n);
  uint8_t (*coord)(int index, int j);  // the grid table's coordinate j of point `index`
  bool iq1() const { return signs == SignBits::kNone; }
};

void unpack_iq2_xxs(const uint8_t* b, GridCodes* c) {
  c->d = f16_to_f32(load16(b));
  for (int ib = 0; ib < 8; ++ib) {
    const uint32_t a0 = load32(b + 2 + 8 * ib), a1 = load32(b + 6 + 8 * ib);
    c->db[ib] = c->d * (0.5f + float(a1 >> 28)) * 0.25f;
    for (int l = 0; l < 4; ++l) {
      c->index[4 * ib + l] = uint16_t((a0 >> 8 * l) & 255);
      c->signs[4 * ib + l] = ksigns((a1 >> 7 * l) & 127);
    }
  }
}
void pack_iq2_xxs(const GridCodes& c, uint8_t* b) {
  for (int ib = 0; ib < 8; ++ib) {
    uint32_t a0 = 0, a1 = load32(b + 6 + 8 * ib) & 0xf0000000u;
    for (int l = 0; l < 4; ++l) {
      a0 |= uint32_t(c.index[4 * ib + l]) << 8 * l;
      a1 |= uint32_t(c.signs[4 * ib + l] & 127) << 7 * l;
    }
    store32(b + 2 + 8 * ib, a0);
    store32(b + 6 + 8 * ib, a1);
  }
}

void unpack_iq2_xs(const uint8_t* b, GridCodes* c) {
  c->d = f16_to_f32(load16(b));
  for (int ib = 0; ib < 8; ++ib) {
    c->db[2 * ib] = c->d * (0.5f + float(b[66 + ib] & 0xf)) * 0.25f;
    c->db[2 * ib + 1] = c->d * (0.5f + float(b[66 + ib] >> 4)) * 0.25f;
  }
  for (int g = 0; g < 32; ++g) {
    const uint16_t q = load16(b + 2 + 2 * g);
    c->index[g] = uint16_t(q & 511);
    c->signs[g] = ksigns(q >> 9);
  }
}
void pack_iq2_xs(const GridCodes& c, uint8_t* b) {
  for (int g = 0; g < 32; ++g) store16(b + 2 + 2 * g, uint16_t(c.index[g] | ((c.signs[g] & 127) << 9)));
}

void unpack_iq2_s(const uint8_t* b, GridCodes* c) {
  c->d = f16_to_f32(load16(b));
  const uint8_t *qs = b + 2, *signs = b + 34, *qh = b + 66, *scales = b + 74;
  for (int ib = 0; ib < 8; ++ib) {
    c->db[2 * ib] = c->d * (0.5f + float(scales[ib] & 0xf)) * 0.25f;
    c->db[2 * ib + 1] = c->d * (0.5f + float(scales[ib] >> 4)) * 0.25f;
    for (int l = 0; l < 4; ++l) {
      c->index[4 * ib + l] = uint16_t(qs[4 * ib + l] | ((qh[ib] << (8 - 2 * l)) & 0x300));
      c->signs[4 * ib + l] = signs[4 * ib + l];
    }
  }
}
void pack_iq2_s(const GridCodes& c, uint8_t* b) {
  for (int ib = 0; ib < 8; ++ib) {
    uint8_t qh = 0;
    for (int l = 0; l < 4; ++l) {
      b[2 + 4 * ib + l] = uint8_t(c.index[4 * ib + l] & 255);
      qh = uint8_t(qh | ((c.index[4 * ib + l] >> 8) << 2 * l));
      b[34 + 4 * ib + l] = c.signs[4 * ib + l];
    }
    b[66 + ib] = qh;
  }
}

void unpack_iq3_xxs(const uint8_t* b, GridCodes* c) {
  c->d = f16_to_f32(load16(b));
  for (int g = 0; g < 64; ++g) c->index[g] = b[2 + g];
  for (int ib = 0; ib < 8; ++ib) {
    const uint32_t a = load32(b + 66 + 4 * ib);
    c->db[ib] = c->d * (0.5f + float(a >> 28)) * 0.5f;
    for (int l = 0; l < 4; ++l) c->signs[4 * ib + l] = ksigns((a >> 7 * l) & 127);
  }
}
void pack_iq3_xxs(const GridCodes& c, uint8_t* b) {
  for (int g = 0; g < 64; ++g) b[2 + g] = uint8_t(c.index[g]);
  for (int ib = 0; ib < 8; ++ib) {
    uint32_t a = load32(b + 66 + 4 * ib) & 0xf0000000u;
    for (int l = 0; l < 4; ++l) a |= uint32_t(c.signs[4 * ib + l] & 127) << 7 * l;
    store32(b + 66 + 4 * ib, a);
  }
}

void unpack_iq3_s(const uint8_t* b, GridCodes* c) {
  c->d = f16_to_f32(load16(b));
  const uint8_t *qs = b + 2, *qh = b + 66, *signs = b + 74, *scales = b + 106;
  for (int ib = 0; ib < 8; ++ib) {
    const int s = ib % 2 == 0 ? scales[ib / 2] & 0xf : scales[ib / 2] >> 4;
    c->db[ib] = c->d * float(1 + 2 * s);
    for (int k = 0; k < 8; ++k) c->index[8 * ib + k] = uint16_t(qs[8 * ib + k] | (((qh[ib] >> k) & 1) << 8));
    for (int l = 0; l < 4; ++l) c->signs[4 * ib + l] = signs[4 * ib + l];
  }
}
void pack_iq3_s(const GridCodes& c, uint8_t* b) {
  for (int ib = 0; ib < 8; ++ib) {
    uint8_t qh = 0;
    for (int k = 0; k < 8; ++k) {
      b[2 + 8 * ib + k] = uint8_t(c.index[8 * ib + k] & 255);
      qh = uint8_t(qh | ((c.index[8 * ib + k] >> 8) << k));
    }
    b[66 + ib] = qh;
    for (int l = 0; l < 4; ++l) b[74 + 4 * ib + l] = c.signs[4 * ib + l];
  }
}

void unpack_iq1_s(const uint8_t* b, GridCodes* c) {
  c->d = f16_to_f32(load16(b));
  for (int ib = 0; ib < 8; ++ib) {
    const uint16_t qh = load16(b + 34 + 2 * ib);
    c->db[ib] = c->d * float(2 * ((qh >> 12) & 7) + 1);
    for (int l = 0; l < 4; ++l) {
      c->index[4 * ib + l] = uint16_t(b[2 + 4 * ib + l] | (((qh >> 3 * l) & 7) << 8));
      c->delta_neg[4 * ib + l] = (qh & 0x8000) != 0;
    }
  }
}
void pack_iq1_s(const GridCodes& c, uint8_t* b) {
  for (int ib = 0; ib < 8; ++ib) {
    uint16_t qh = uint16_t(load16(b + 34 + 2 * ib) & 0xf000);
    for (int l = 0; l < 4; ++l) {
      b[2 + 4 * ib + l] = uint8_t(c.index[4 * ib + l] & 255);
      qh = uint16_t(qh | ((c.index[4 * ib + l] >> 8) << 3 * l));
    }
    store16(b + 34 + 2 * ib, qh);
  }
}

void unpack_iq1_m(const uint8_t* b, GridCodes* c) {
  c->d = f16_to_f32(iq1_m_d_bits(b));
  for (int ib = 0; ib < 8; ++ib) {
    const uint16_t sc = load16(b + 48 + 2 * (ib / 2));
    c->db[2 * ib] = c->d * float(2 * ((sc >> (6 * (ib % 2) + 0)) & 7) + 1);
    c->db[2 * ib + 1] = c->d * float(2 * ((sc >> (6 * (ib % 2) + 3)) & 7) + 1);
    for (int l = 0; l < 4; ++l) {
      const uint8_t h = uint8_t(b[32 + 2 * ib + l / 2] >> (4 * (l % 2)));
      c->index[4 * ib + l] = uint16_t(b[4 * ib + l] | ((h & 7) << 8));
      c->delta_neg[4 * ib + l] = (h & 0x08) != 0;
    }
  }
}
void pack_iq1_m(const GridCodes& c, uint8_t* b) {
  for (int g = 0; g < 32; ++g) {
    b[g] = uint8_t(c.index[g] & 255);
    uint8_t& h = b[32 + g / 2];
    const int shift = 4 * (g % 2);
    h = uint8_t((h & ~(7 << shift)) | ((c.index[g] >> 8) << shift));
  }
}

uint8_t coord_iq2xxs(int k, int j) { return grid_byte(iq2xxs_grid[k], j); }
uint8_t coord_iq2xs(int k, int j) { return grid_byte(iq2xs_grid[k], j); }
uint8_t coord_iq2s(int k, int j) { return grid_byte(iq2s_grid[k], j); }
uint8_t coord_iq3xxs(int k, int j) { return grid_byte(iq3xxs_grid[k], j); }
uint8_t coord_iq3s(int k, int j) { return grid_byte(iq3s_grid[k], j); }
uint8_t coord_iq1(int k, int j) { return grid_byte(iq1s_grid[k], j); }

const GridSpec kGridSpecs[] = {
    {GgmlType::IQ2_XXS, 66, 8, 2, 3, 32, 8.f, SignBits::kEven7, 1.f, lattice_iq2xxs, unpack_iq2_xxs, pack_iq2_xxs,
     dequantize_row_iq2_xxs, coord_iq2xxs},
    {GgmlType::IQ2_XS, 74, 8, 2, 3, 16, 8.f, SignBits::kEven7, 1.f, lattice_iq2xs, unpack_iq2_xs, pack_iq2_xs,
     dequantize_row_iq2_xs, coord_iq2xs},
    {GgmlType::IQ2_S, 82, 8, 2, 3, 16, 8.f, SignBits::kFull8, 2.f, lattice_iq2s, unpack_iq2_s, pack_iq2_s,
     dequantize_row_iq2_s, coord_iq2s},
    {GgmlType::IQ3_XXS, 98, 4, 3, 8, 32, 4.f, SignBits::kEven7, 2.f, lattice_iq3xxs, unpack_iq3_xxs, pack_iq3_xxs,
     dequantize_row_iq3_xxs, coord_iq3xxs},
    {GgmlType::IQ3_S, 110, 4, 3, 8, 32, 1.f, SignBits::kFull8, 2.f, lattice_iq3s, unpack_iq3_s, pack_iq3_s,
     dequantize_row_iq3_s, coord_iq3s},
    {GgmlType::IQ1_S, 50, 8, 2, 3, 32, 1.f, SignBits::kNone, 2.f, lattice_iq1, unpack_iq1_s, pack_iq1_s,
     dequantize_row_iq1_s, coord_iq1},
    {GgmlType::IQ1_M, 56, 8, 2, 3, 16, 1.f, SignBits::kNone, 2.f, lattice_iq1, unpack_iq1_m, pack_iq1_m,
     dequantize_row_iq1_m, coord_iq1},
};

const GridSpec* find_spec(GgmlType type) {
  for (const GridSpec& s : kGridSpecs)
    if (s.type == type) return &s;
  return nullptr;
}

const GridSpec& spec_of(GgmlType type) {
  const GridSpec* s = find_spec(type);
  SR_CHECK(s, "[ggml] ", ggml_type_name(type), " is not a grid i-quant (iq2_xxs iq2_xs iq2_s iq3_xxs iq3_s iq1_s iq1_m)");
  return *s;
}

// y clamped into the open rounding cell (q - h, q + h) of the stored coordinate q, whose cell is
// unbounded on the outer side at the extreme levels lo_q / hi_q. The margin keeps y off the
// cell's edge, where rounding would tie.
float into_cell(float y, float q, float h, float lo_q, float hi_q) {
  const float margin = h / 64;
  if (q > lo_q) y = std::max(y, q - h + margin);
  if (q < hi_q) y = std::min(y, q + h - margin);
  return y;
}

void check_finite_at(const GridSpec& sp, const float* x, const float* v, int64_t e) {
  SR_CHECK(std::isfinite(x[e]), "[ggml] cannot encode a ", ggml_type_name(sp.type), " row: element ", e, " is ", x[e]);
  SR_CHECK(!v || std::isfinite(v[e]), "[ggml] cannot encode a ", ggml_type_name(sp.type), " row: rounding offset v[",
           e, "] is ", v[e]);
}

// IQ2 / IQ3 groups of one super-block from the shifted values u [256] (odd units): signs, the
// parity fix-up, and each group's grid point.
void choose_signed_points(const GridSpec& sp, const Lattice& g, const float* u, const float* w, GridCodes* c) {
  float xval[256], waux[256];
  for (int i = 0; i < kQk; ++i) waux[i] = std::sqrt(w[i]);
  for (int k = 0; k < kQk / 8; ++k) {
    uint8_t s = 0;
    int nneg = 0;
    for (int i = 0; i < 8; ++i) {
      const float ui = u[8 * k + i];
      xval[8 * k + i] = ui >= 0 ? ui : -ui;
      if (ui < 0) s = uint8_t(s | (1 << i)), ++nneg;
    }
    if (sp.signs == SignBits::kEven7 && nneg % 2) {
      int imin = 0;
      float min = w[8 * k] * u[8 * k] * u[8 * k];
      for (int i = 1; i < 8; ++i) {
        const float a = w[8 * k + i] * u[8 * k + i] * u[8 * k + i];
        if (a < min) min = a, imin = i;
      }
      xval[8 * k + imin] = -xval[8 * k + imin];
      s = uint8_t(s ^ (1 << imin));
    }
    c->signs[k] = s;
  }
  int8_t L[8];
  for (int k = 0; k < kQk / sp.dim; ++k)
    c->index[k] = uint16_t(nearest_grid_point(g, sp.bits, sp.kmax, xval + sp.dim * k, waux + sp.dim * k, 1.f, 1.f, L,
                                              nullptr));
}

// IQ1 groups from u [256] (level units, delta removed): rounded to {-1, 0, 1}, snapped with the
// group's delta.
void choose_iq1_points(const Lattice& g, const float* u, const float* w, GridCodes* c) {
  for (int k = 0; k < kQk / 8; ++k) {
    const float delta = c->delta_neg[k] ? -kIq1Delta : kIq1Delta;
    int8_t L[8];
    float xval[8];
    for (int i = 0; i < 8; ++i) {
      L[i] = int8_t(std::max(-1, std::min(1, nearest_int(u[8 * k + i]))) + 1);
      xval[i] = u[8 * k + i] + delta;
    }
    const uint32_t p = pack_levels(L, 8, 2);
    int index = g.map[p];
    if (index < 0) index = iq1_best_neighbour(g, g.neighbours_of(p), xval, w + 8 * k, 1.f, c->delta_neg[k] ? kXm : kXp, L);
    c->index[k] = uint16_t(index);
  }
}

// One super-block: the re-coded block to `out`, the derivative to dv [256].
void frozen_block(const GridSpec& sp, const uint8_t* stored, const float* x, const float* w, const float* v,
                  IqGridRounding rounding, int64_t e0, uint8_t* out, float* dv) {
  std::memcpy(out, stored, sp.bytes);
  GridCodes c;
  sp.unpack(stored, &c);
  if (c.d == 0) {  // an all-zero super-block: kept as stored
    for (int i = 0; i < kQk; ++i) dv[i] = 0;
    return;
  }
  const Lattice& g = sp.lattice();
  const float top = float(2 * sp.kmax - 1);  // the outermost odd coordinate (IQ1: level 1)
  float u[256], wl[256];
  for (int i = 0; i < kQk; ++i) {
    check_finite_at(sp, x, v, e0 + i);
    const int8_t* p = g.point(c.index[i / sp.dim]);
    const float s = sp.unit * c.db[i / sp.sub];
    const float vi = v ? v[e0 + i] : 0.f;
    wl[i] = w ? w[i] : x[e0 + i] * x[e0 + i];
    if (sp.iq1()) {
      const float q = float((p[i % 8] - 1) / 2 - 1);
      const float delta = c.delta_neg[i / 8] ? -kIq1Delta : kIq1Delta;
      if (!(s > 0)) {
        u[i] = q, dv[i] = 0;
        continue;
      }
      float y = x[e0 + i] / s - delta;
      if (rounding == IqGridRounding::kFromStoredCodes) y = into_cell(y, q, 0.5f, -1.f, 1.f);
      u[i] = y + vi;
      dv[i] = s;
    } else {
      const float q = (c.signs[i / 8] >> (i % 8)) & 1 ? -float(p[i % sp.dim]) : float(p[i % sp.dim]);
      if (!(s > 0)) {
        u[i] = q, dv[i] = 0;
        continue;
      }
      float y = x[e0 + i] / s;
      if (rounding == IqGridRounding::kFromStoredCodes) y = into_cell(y, q, 1.f, -top, top);
      u[i] = y + 2 * vi;
      dv[i] = 2 * s;
    }
  }
  if (sp.iq1()) choose_iq1_points(g, u, wl, &c);
  else choose_signed_points(sp, g, u, wl, &c);
  sp.pack(c, out);
}

}  // namespace

bool iq_grid_type(GgmlType type) { return find_spec(type) != nullptr; }

int iq_grid_sub_block(GgmlType type) { return spec_of(type).sub; }

void iq_grid_weights(GgmlType type, const float* x, const float* importance, int64_t n, float* w) {
  const GridSpec& sp = spec_of(type);
  check_row(n, ggml_type_name(type).c_str());
  for (int64_t b = 0; b < n / kQk; ++b) {
    const float* xb = x + b * kQk;
    if (!importance) {
      for (int i = 0; i < kQk; ++i) w[b * kQk + i] = xb[i] * xb[i];
      continue;
    }
    sub_block_weights(xb, importance + b * kQk, row_sigma2(xb, sp.sigma_factor), kQk, w + b * kQk);
  }
}

void iq_grid_row_scales(GgmlType type, const void* blocks, int64_t n, float* scale) {
  const GridSpec& sp = spec_of(type);
  check_row(n, ggml_type_name(type).c_str());
  const int per = kQk / sp.sub;
  for (int64_t b = 0; b < n / kQk; ++b) {
    GridCodes c;
    sp.unpack(static_cast<const uint8_t*>(blocks) + b * sp.bytes, &c);
    for (int j = 0; j < per; ++j) scale[b * per + j] = c.db[j];
  }
}

void iq_grid_unpack_values(GgmlType type, const void* blocks, int64_t n, int16_t* q) {
  const GridSpec& sp = spec_of(type);
  SR_CHECK(!sp.iq1(), "[ggml] ", ggml_type_name(type), " values g + delta are not integer multiples of the scale");
  check_row(n, ggml_type_name(type).c_str());
  for (int64_t b = 0; b < n / kQk; ++b) {
    GridCodes c;
    sp.unpack(static_cast<const uint8_t*>(blocks) + b * sp.bytes, &c);
    for (int i = 0; i < kQk; ++i) {
      const int value = sp.coord(c.index[i / sp.dim], i % sp.dim);
      q[b * kQk + i] = int16_t((c.signs[i / 8] >> (i % 8)) & 1 ? -value : value);
    }
  }
}

void iq_grid_frozen_row(GgmlType type, const void* blocks, const float* x, const float* w, const float* v, int64_t n,
                        void* out, float* x_hat, float* dv, IqGridRounding rounding) {
  const GridSpec& sp = spec_of(type);
  check_row(n, ggml_type_name(type).c_str());
  const auto* src = static_cast<const uint8_t*>(blocks);
  uint8_t tmp[110];
  float dtmp[256];
  for (int64_t b = 0; b < n / kQk; ++b) {
    uint8_t* dst = out ? static_cast<uint8_t*>(out) + b * sp.bytes : tmp;
    frozen_block(sp, src + b * sp.bytes, x, w ? w + b * kQk : nullptr, v, rounding, b * kQk, dst, dv ? dv + b * kQk : dtmp);
    if (x_hat) sp.dequantize(dst, x_hat + b * kQk, kQk);
  }
}

}  // namespace sr
