// SignRound on ggml block types (spec §3.6): search the per-sub-block parameters
// once, freeze them, tune only the rounding offsets v, and finally encode blocks that
// carry exactly the frozen parameters.
//
// Contract, for a row x [n] of a legacy type (Q4_0 Q4_1 Q5_0 Q5_1 Q8_0) or a
// k-quant (Q2_K Q3_K Q4_K Q5_K Q6_K); g = e / group is the sub-block of element e:
//
//   search   -> GgmlRowParams p: the blocks llama.cpp's encoder writes for x (ref or
//               imatrix-weighted), and the parameters those stored blocks decode with:
//                 p.scale[g] = d * sc_g (fp32 product of the fp16 factor and the code),
//                 p.min[g]   = dmin * m_g (Q2_K/Q4_K/Q5_K), -m (Q4_1/Q5_1), 0 (symmetric).
//   qdq      -> w_hat[e] = p.scale[g] * q[e] - p.min[g]   (asymmetric types)
//               w_hat[e] = p.scale[g] * q[e]              (symmetric types)
//               with q[e] = clamp(nearest((x[e] + p.min[g]) / p.scale[g] + v[e]), qmin, qmax)
//               resp. clamp(nearest(x[e] / p.scale[g] + v[e]), qmin, qmax),
//               nearest = round half to even; [qmin, qmax] = p.code_min..p.code_max.
//   encode   -> blocks whose headers are p's (byte for byte) and whose codes are q, so
//               that ggml's dequantize gives exactly qdq's w_hat, bit for bit (same fp32
//               operations as ggml_dequantize).
//   Sub-blocks with p.scale[g] == 0 decode to -p.min[g] whatever their codes: there q is
//   not recomputed; encode keeps the searched codes (so bytes still match llama.cpp)
//   and qdq uses them too.
//
// With v = 0 and GgmlRounding::kLlamaRef, encode(search_ref(x)) reproduces
// quantize_row_ref(x) byte for byte for every type, and encode(search_weighted(x, w))
// reproduces quantize_row_weighted(x, w) for the k-quants and Q8_0. (The legacy
// imatrix encoders keep the codes of their own scale search; re-rounding those
// against the stored scale, as encode does, moves each element closer or leaves it.) kStoredGrid (the default,
// the SignRound rule above) coincides with kLlamaRef for the k-quants. For the legacy
// types llama.cpp's ref encoder rounds against the fp32 scale before it is stored as
// fp16 (half up; Q8_0 half away from zero), so kLlamaRef keeps that rule there
// (q = trunc(x * (1/d32) + v + 8.5) - 8 etc.), while kStoredGrid rounds against the
// stored scale like the k-quants. Tune with kStoredGrid; kLlamaRef exists to
// reproduce llama.cpp.
//
// Thread-safety: all functions are pure; distinct rows may be processed in parallel.
#pragma once
#include <cstdint>
#include <vector>

#include "quant/formats/ggml_types.h"

namespace sr {

enum class GgmlRounding : uint8_t {
  kStoredGrid,  // q = nearest((x + min)/scale + v) against the stored parameters
  kLlamaRef,    // llama.cpp's legacy ref rule on the fp32 scale (== kStoredGrid for k-quants)
};

struct GgmlRowParams {
  GgmlType type = GgmlType::Q8_0;
  int64_t n = 0;          // elements in the row
  int group = 0;          // elements per sub-block sharing (scale, min): 16 or 32
  bool asymmetric = false;
  int code_min = 0;       // range of q in the reconstruction (e.g. Q4_0 -8..7, Q4_K 0..15)
  int code_max = 0;
  std::vector<float> scale;     // [n / group] effective scale, fp32
  std::vector<float> min;       // [n / group] effective min (0 for symmetric types)
  std::vector<uint8_t> blocks;  // [ggml_row_bytes(type, n)] the searched row as stored
  // Legacy types (kLlamaRef): the fp32 block scale/min llama.cpp's ref encoder rounds against,
  // [n / 32] (ggml_search_row_ref, weighted Q8_0). Else empty.
  std::vector<float> ref_scale;
  std::vector<float> ref_min;
  // Types whose table hooks weigh their rounding (the grid i-quants, GgmlTableHooks::row_weights):
  // the encoder's per-element weights [n] from the search's x and importance. Else empty.
  std::vector<float> weights;

  int64_t n_groups() const { return group ? n / group : 0; }
};

// True for the types these hooks handle: those whose traits row has linear frozen-parameter
// hooks (has_block_params: legacy, k-quants; generic over the row's geometry, bits, sym,
// pack/unpack, legacy ref rule) or table hooks (has_table: IQ4_NL/IQ4_XS, ggml_iquants_nl.h, codes
// 0..15; the grid i-quants, ggml_iquants_grid.h, codes = signed grid values; both min 0, scale =
// the sub-block's stored scale, rounding and its derivative by the row's table.frozen_row).
bool ggml_has_block_params(GgmlType type);

// llama.cpp's encoder without importance (quantize_row_ref), frozen.
// REQUIRES: ggml_has_block_params(type); n a multiple of the block size (else throws).
GgmlRowParams ggml_search_row_ref(GgmlType type, const float* x, int64_t n);

// llama.cpp's imatrix encoder (quantize_row_weighted) on ONE tensor row, frozen.
// weights [n] per-column importance (non-null). Q8_0 ignores them (as llama.cpp does).
GgmlRowParams ggml_search_row_weighted(GgmlType type, const float* x, int64_t n,
                                       const float* weights);

// Parameters of already stored blocks (e.g. a row read from a GGUF file): scale/min
// decoded from the headers, blocks copied. No ref_scale/ref_min/weights.
GgmlRowParams ggml_row_params_from_blocks(GgmlType type, const void* blocks, int64_t n);

// Writes ggml_row_bytes(p.type, p.n) bytes to `out`: p's headers, codes q from x [p.n]
// and offsets v [p.n] (nullptr = all 0). Throws sr::Error if an x or v used for a code
// is not finite, or if kLlamaRef is asked for legacy params without ref_scale.
void ggml_encode_row_frozen(const GgmlRowParams& p, const float* x, const float* v, void* out,
                            GgmlRounding rounding = GgmlRounding::kStoredGrid);

// The fp32 reconstruction w_hat [p.n] that ggml_encode_row_frozen's blocks decode to
// (kStoredGrid rule), computed without building blocks.
void ggml_qdq_row_frozen(const GgmlRowParams& p, const float* x, const float* v, float* w_hat);

// ggml_qdq_row_frozen plus the straight-through derivative of each w_hat[e] with respect to
// its offset v[e] (spec §3.6, rne passes the gradient, clamp blocks it outside its range):
//   dv[e] = p.scale[g]  where nearest(u[e] + v[e]) lies in [p.code_min, p.code_max] (ends
//                       included), u = (x + min)/scale (asym) or x/scale (sym);
//   dv[e] = 0           where the code is clamped, or p.scale[g] == 0 (code not recomputed).
// w_hat is bit-identical to ggml_qdq_row_frozen's. dv [p.n] may be null.
void ggml_qdq_row_frozen_grad(const GgmlRowParams& p, const float* x, const float* v, float* w_hat, float* dv);

// The signed multipliers q [n] of stored blocks (w_hat = scale*q - min), e.g. Q4_0
// code 3 -> -5, Q4_K code 3 -> 3. REQUIRES: ggml_has_block_params(type).
void ggml_unpack_row_codes(GgmlType type, const void* blocks, int64_t n, int16_t* q);

}  // namespace sr
