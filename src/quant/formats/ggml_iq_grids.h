// The lattice grids of ggml's i-quants, data from llama.cpp c392e50 (ggml/src/ggml-common.h,
// MIT licence), generated into ggml_iq_grids.cpp by scripts/gen_iq_grids.py. Entry k of a
// grid is one grid point; its coordinate j is byte j of the entry (little-endian):
//   iq2xxs_grid [256]  8 coordinates in {8, 25, 43}        IQ2_XXS
//   iq2xs_grid  [512]  8 coordinates in {8, 25, 43}        IQ2_XS
//   iq2s_grid   [1024] 8 coordinates in {8, 25, 43}        IQ2_S
//   iq3xxs_grid [256]  4 coordinates in {4, 12, ..., 52, 62} IQ3_XXS
//   iq3s_grid   [512]  4 coordinates in {1, 3, ..., 15}    IQ3_S
//   iq1s_grid   [2048] 8 coordinates in {-1, 0, 1} (int8)  IQ1_S, IQ1_M
// The sign tables are rules, not data: ggml's ksigns_iq2xs[i] (i < 128) is i with bit 7 set
// when i has an odd number of set bits (7 stored signs, the 8th makes the count even), and
// kmask_iq2xs[j] is 1 << j.
#pragma once
#include <cstdint>

namespace sr::iq_grids {

extern const uint64_t iq2xxs_grid[256];
extern const uint64_t iq2xs_grid[512];
extern const uint64_t iq2s_grid[1024];
extern const uint32_t iq3xxs_grid[256];
extern const uint32_t iq3s_grid[512];
extern const uint64_t iq1s_grid[2048];

// ggml's ksigns_iq2xs[i]: the 8 sign bits of 7 stored ones (i in [0, 128)).
constexpr uint8_t ksigns(uint32_t i) {
  uint32_t p = i ^ (i >> 4);
  p ^= p >> 2;
  p ^= p >> 1;
  return uint8_t(i | ((p & 1u) << 7));
}

}  // namespace sr::iq_grids
