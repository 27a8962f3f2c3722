// Bit layouts of the k-quant super-blocks (see ggml_kquants.h): code packing,
// sub-block scale codes, effective parameters, and decoding.
#include <cstring>

#include "common/half.h"
#include "quant/formats/ggml_kquants.h"
#include "quant/formats/ggml_kquants_scales.h"

namespace sr {

// ---- 6-bit scale/min codes of Q4_K and Q5_K (ggml get_scale_min_k4) ---------------

void k4_get_scale_min(int g, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (g < 4) {
    *sc = q[g] & 63;
    *m = q[g + 4] & 63;
  } else {
    *sc = uint8_t((q[g + 4] & 0xF) | ((q[g - 4] >> 6) << 4));
    *m = uint8_t((q[g + 4] >> 4) | ((q[g - 0] >> 6) << 4));
  }
}

void k4_set_scales_mins(const uint8_t* ls, const uint8_t* lm, uint8_t* q) {
  // Same statement order as ggml: the g >= 4 branch ORs into bytes written for g < 4.
  for (int g = 0; g < 8; ++g) {
    if (g < 4) {
      q[g] = ls[g];
      q[g + 4] = lm[g];
    } else {
      q[g + 4] = uint8_t((ls[g] & 0xF) | ((lm[g] & 0xF) << 4));
      q[g - 4] = uint8_t(q[g - 4] | ((ls[g] >> 4) << 6));
      q[g - 0] = uint8_t(q[g - 0] | ((lm[g] >> 4) << 6));
    }
  }
}

// ---- 6-bit biased scale codes of Q3_K ---------------------------------------------

int q3k_get_scale(int g, const uint8_t* scales) {
  int sc = g < 8 ? (scales[g] & 0xF) : (scales[g - 8] >> 4);
  return (sc | (((scales[8 + g % 4] >> (2 * (g / 4))) & 3) << 4)) - 32;
}

void q3k_set_scales(const int* biased, uint8_t* scales) {
  std::memset(scales, 0, 12);
  for (int g = 0; g < 16; ++g) {
    int l = biased[g];
    if (g < 8) {
      scales[g] = uint8_t(l & 0xF);
    } else {
      scales[g - 8] = uint8_t(scales[g - 8] | ((l & 0xF) << 4));
    }
    l >>= 4;
    scales[g % 4 + 8] = uint8_t(scales[g % 4 + 8] | (l << (2 * (g / 4))));
  }
}

// ---- pack / unpack ----------------------------------------------------------------

namespace {

// 2-bit fields of Q2_K/Q3_K: element 128h + 32s + l in bits 2s of qs[32h + l].
void unpack_2bit(const uint8_t* qs, uint8_t* codes) {
  for (int e = 0; e < kQkK; ++e) {
    const int h = e / 128, s = (e % 128) / 32, l = e % 32;
    codes[e] = (qs[32 * h + l] >> (2 * s)) & 3;
  }
}

void pack_2bit(const uint8_t* codes, uint8_t* qs) {
  for (int j = 0; j < kQkK; j += 128) {
    for (int l = 0; l < 32; ++l) {
      qs[j / 4 + l] = uint8_t((codes[j + l] & 3) | ((codes[j + l + 32] & 3) << 2) |
                              ((codes[j + l + 64] & 3) << 4) | ((codes[j + l + 96] & 3) << 6));
    }
  }
}

// 4-bit fields of Q4_K/Q5_K: element 64k + l low nibble, 64k + 32 + l high nibble of qs[32k + l].
void unpack_4bit(const uint8_t* qs, uint8_t* codes) {
  for (int k = 0; k < 4; ++k) {
    for (int l = 0; l < 32; ++l) {
      codes[64 * k + l] = qs[32 * k + l] & 0xF;
      codes[64 * k + 32 + l] = qs[32 * k + l] >> 4;
    }
  }
}

void pack_4bit(const uint8_t* codes, uint8_t* qs) {
  for (int k = 0; k < 4; ++k) {
    for (int l = 0; l < 32; ++l) {
      qs[32 * k + l] = uint8_t((codes[64 * k + l] & 0xF) | ((codes[64 * k + 32 + l] & 0xF) << 4));
    }
  }
}

}  // namespace

void unpack_codes_q2_K(const BlockQ2_K& b, uint8_t* codes) { unpack_2bit(b.qs, codes); }
void pack_codes_q2_K(const uint8_t* codes, BlockQ2_K* b) { pack_2bit(codes, b->qs); }

void unpack_codes_q3_K(const BlockQ3_K& b, uint8_t* codes) {
  unpack_2bit(b.qs, codes);
  for (int e = 0; e < kQkK; ++e) codes[e] = uint8_t(codes[e] | (((b.hmask[e % 32] >> (e / 32)) & 1) << 2));
}

void pack_codes_q3_K(const uint8_t* codes, BlockQ3_K* b) {
  uint8_t low[kQkK];
  std::memset(b->hmask, 0, sizeof(b->hmask));
  for (int e = 0; e < kQkK; ++e) {
    if (codes[e] > 3) b->hmask[e % 32] = uint8_t(b->hmask[e % 32] | (1 << (e / 32)));
    low[e] = codes[e] & 3;
  }
  pack_2bit(low, b->qs);
}

void unpack_codes_q4_K(const BlockQ4_K& b, uint8_t* codes) { unpack_4bit(b.qs, codes); }
void pack_codes_q4_K(const uint8_t* codes, BlockQ4_K* b) { pack_4bit(codes, b->qs); }

void unpack_codes_q5_K(const BlockQ5_K& b, uint8_t* codes) {
  unpack_4bit(b.qs, codes);
  for (int k = 0; k < 4; ++k) {
    for (int l = 0; l < 32; ++l) {
      codes[64 * k + l] = uint8_t(codes[64 * k + l] | (((b.qh[l] >> (2 * k)) & 1) << 4));
      codes[64 * k + 32 + l] = uint8_t(codes[64 * k + 32 + l] | (((b.qh[l] >> (2 * k + 1)) & 1) << 4));
    }
  }
}

void pack_codes_q5_K(const uint8_t* codes, BlockQ5_K* b) {
  pack_4bit(codes, b->qs);
  std::memset(b->qh, 0, sizeof(b->qh));
  for (int k = 0; k < 4; ++k) {
    for (int l = 0; l < 32; ++l) {
      if (codes[64 * k + l] > 15) b->qh[l] = uint8_t(b->qh[l] | (1 << (2 * k)));
      if (codes[64 * k + 32 + l] > 15) b->qh[l] = uint8_t(b->qh[l] | (2 << (2 * k)));
    }
  }
}

void unpack_codes_q6_K(const BlockQ6_K& b, uint8_t* codes) {
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = b.ql + 64 * h;
    const uint8_t* qh = b.qh + 32 * h;
    for (int r = 0; r < 4; ++r) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t lo = r < 2 ? (ql[32 * (r % 2) + l] & 0xF) : (ql[32 * (r % 2) + l] >> 4);
        codes[128 * h + 32 * r + l] = uint8_t(lo | (((qh[l] >> (2 * r)) & 3) << 4));
      }
    }
  }
}

void pack_codes_q6_K(const uint8_t* codes, BlockQ6_K* b) {
  for (int h = 0; h < 2; ++h) {
    uint8_t* ql = b->ql + 64 * h;
    uint8_t* qh = b->qh + 32 * h;
    const uint8_t* c = codes + 128 * h;
    for (int l = 0; l < 32; ++l) {
      ql[l] = uint8_t((c[l] & 0xF) | ((c[l + 64] & 0xF) << 4));
      ql[l + 32] = uint8_t((c[l + 32] & 0xF) | ((c[l + 96] & 0xF) << 4));
      qh[l] = uint8_t(((c[l] >> 4) & 3) | (((c[l + 32] >> 4) & 3) << 2) |
                      (((c[l + 64] >> 4) & 3) << 4) | (((c[l + 96] >> 4) & 3) << 6));
    }
  }
}

// ---- effective parameters -----------------------------------------------------------

void block_params_q2_K(const BlockQ2_K& b, float* scale, float* min) {
  const float d = f16_to_f32(b.d);
  const float dmin = f16_to_f32(b.dmin);
  for (int g = 0; g < 16; ++g) {
    scale[g] = d * (b.scales[g] & 0xF);
    min[g] = dmin * (b.scales[g] >> 4);
  }
}

void block_params_q3_K(const BlockQ3_K& b, float* scale, float* min) {
  const float d = f16_to_f32(b.d);
  for (int g = 0; g < 16; ++g) {
    scale[g] = d * q3k_get_scale(g, b.scales);
    min[g] = 0.0f;
  }
}

namespace {

void block_params_k4(uint16_t d16, uint16_t dmin16, const uint8_t* scales, float* scale, float* min) {
  const float d = f16_to_f32(d16);
  const float dmin = f16_to_f32(dmin16);
  for (int g = 0; g < 8; ++g) {
    uint8_t sc, m;
    k4_get_scale_min(g, scales, &sc, &m);
    scale[g] = d * sc;
    min[g] = dmin * m;
  }
}

}  // namespace

void block_params_q4_K(const BlockQ4_K& b, float* scale, float* min) {
  block_params_k4(b.d, b.dmin, b.scales, scale, min);
}
void block_params_q5_K(const BlockQ5_K& b, float* scale, float* min) {
  block_params_k4(b.d, b.dmin, b.scales, scale, min);
}

void block_params_q6_K(const BlockQ6_K& b, float* scale, float* min) {
  const float d = f16_to_f32(b.d);
  for (int g = 0; g < 16; ++g) {
    scale[g] = d * b.scales[g];
    min[g] = 0.0f;
  }
}

}  // namespace sr
