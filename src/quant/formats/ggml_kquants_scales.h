// Packing of the sub-block scale codes of Q3_K, Q4_K and Q5_K (internal to
// quant/formats; the layouts are spelled out in ggml_kquants.h).
#pragma once
#include <cstdint>

namespace sr {

// Q4_K/Q5_K: the 6-bit scale code *sc and min code *m of sub-block g (0..7) from the
// 12 packed bytes q (ggml get_scale_min_k4).
void k4_get_scale_min(int g, const uint8_t* q, uint8_t* sc, uint8_t* m);

// Q4_K/Q5_K: writes the 12 packed bytes q from ls[8] and lm[8]. Codes are expected in
// [0, 63]; a larger value spills into neighbouring bits exactly as ggml's statements
// would (ggml's imatrix Q4_K path does not clamp), so bytes stay identical.
void k4_set_scales_mins(const uint8_t* ls, const uint8_t* lm, uint8_t* q);

// Q3_K: the signed scale code of sub-block g (0..15), i.e. the 6-bit field minus 32.
int q3k_get_scale(int g, const uint8_t* scales);

// Q3_K: writes scales[12] from 16 biased codes in [0, 63].
void q3k_set_scales(const int* biased, uint8_t* scales);

}  // namespace sr
