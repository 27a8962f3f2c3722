// ggml's lattice i-quants: IQ3_XXS, IQ3_S, IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S, IQ1_M
// (ggml-common.h / ggml-quants.c, llama.cpp c392e50). IQ4_NL / IQ4_XS are elsewhere.
//
// A super-block holds 256 consecutive elements of a row. Its elements are taken in groups of
// 8 (IQ2_*, IQ1_*) or 4 (IQ3_*) that are each ONE point of a fixed grid (ggml_iq_grids.h):
// the stored code of a group is the point's index, and its signs (IQ2/IQ3) are stored apart.
// Sub-blocks of 32 (or 16) elements share a small integer scale code s, multiplied by the
// fp16 super-block factor d. "fp16" is IEEE binary16; fields are little-endian.
//
//   type     bytes bpw     group  index bits  sub-block scale              value of element e
//   IQ2_XXS   66  2.0625     8       8        32: 4 bits  db = d*(0.5+s)/4    db * g_e * sign_e
//   IQ2_XS    74  2.3125     8       9        16: 4 bits  db = d*(0.5+s)/4    db * g_e * sign_e
//   IQ2_S     82  2.5625     8      10        16: 4 bits  db = d*(0.5+s)/4    db * g_e * sign_e
//   IQ3_XXS   98  3.0625     4       8        32: 4 bits  db = d*(0.5+s)/2    db * g_e * sign_e
//   IQ3_S    110  3.4375     4       9        32: 4 bits  db = d*(1+2s)       db * g_e * sign_e
//   IQ1_S     50  1.5625     8      11        32: 3 bits  dl = d*(2s+1)       dl * (g_e + delta)
//   IQ1_M     56  1.75       8      11        16: 3 bits  dl = d*(2s+1)       dl * (g_e + delta)
// g_e is coordinate e%8 (or e%4) of the group's grid point; sign_e is -1 where its sign bit is
// set. IQ1: delta = +-0.125 per group of 8, the sign stored with the group.
//
// Byte layouts (offsets in bytes; ib = sub-block of 32 elements, l = group within it):
//   IQ2_XXS  d @0; then per ib (8 bytes @2+8ib) two uint32 a0, a1: byte l of a0 = grid index
//            of group l (4 groups of 8); a1 bits 7l..7l+6 = 7 sign bits of group l (the 8th
//            makes the number of set signs even: ggml's ksigns_iq2xs), bits 28..31 = s.
//   IQ2_XS   d @0; qs[32] uint16 @2: group g (0..31) = 9-bit grid index | 7 sign bits << 9;
//            scales[8] @66: low nibble s of elements 32ib..+15, high nibble of +16..+31.
//   IQ2_S    d @0; qs[32] @2: low 8 bits of group g's index; signs[32] @34: 8 sign bits of
//            group g; qh[8] @66: bits 2l..2l+1 of qh[ib] = index bits 8..9 of group 4ib+l;
//            scales[8] @74 as IQ2_XS.
//   IQ3_XXS  d @0; qs[64] @2: grid index of group g (0..63, 4 elements each); then per ib a
//            uint32 @66+4ib: bits 7k..7k+6 = 7 sign bits of elements 32ib+8k..+7 (ksigns),
//            bits 28..31 = s.
//   IQ3_S    d @0; qs[64] @2: low 8 bits of group g's index; qh[8] @66: bit k of qh[ib] =
//            index bit 8 of group 8ib+k; signs[32] @74: byte of 8 sign bits per 8 elements;
//            scales[4] @106: nibble s of sub-block 2j (low) and 2j+1 (high).
//   IQ1_S    d @0; qs[32] @2: low 8 bits of group g's index; qh[8] uint16 @34: bits 3l..3l+2
//            = index bits 8..10 of group 4ib+l, bits 12..14 = s, bit 15 = delta negative.
//   IQ1_M    qs[32] @0 as IQ1_S; qh[16] @32: nibble h of group g in qh[g/2] (low nibble for
//            even g): bits 0..2 = index bits 8..10, bit 3 = delta negative; scales[8] @48
//            as uint16 sc[4]: 3-bit s of 16-element sub-block b at bits 3*(b%4) of sc[b/4],
//            and the fp16 d in the top nibbles: bits 0..3 of d from sc[0] >> 12, 4..7 from
//            sc[1], 8..11 from sc[2], 12..15 from sc[3].
//
// Decoding computes ggml's dequantize_row_* expressions in fp32 in its order (db first, then
// times the grid value, then the sign), so the same bits.
//
// Encoders (byte-identical to llama.cpp c392e50's quantize_iq* for one row, details in
// docs/formats-ggml.md): per sub-block, the signs are split off (IQ2_XXS/XS, IQ3_XXS flip the
// least important element to make their count even), then a scan of candidate scales rounds
// |x|/scale to the nearest lattice point, snapping a point off the grid to its best grid
// neighbour (ggml's neighbour tables: for every off-grid lattice point, the grid points at its
// 1-3 smallest distances), and keeps the least-squares best; IQ1 searches the exact optimal
// 3-level split of the sorted elements. The sub-block scales are then quantized against one
// fp16 d per super-block with ggml's fudge factors. Weights are the imatrix row times
// sqrt(sigma^2 + x^2), as ggml; without an imatrix (the *_ref entries) x^2, or sigma^2/4 + x^2
// for IQ2_S.
//
// llama.cpp refuses IQ2_XXS, IQ2_XS, IQ2_S and IQ1_S without an importance matrix: their
// *_ref entries throw sr::Error with its explanation, and every weighted entry requires one.
// IQ1_M it refuses only inside the blocks (output / token_embd are written with x^2 weights):
// its *_ref entry encodes, and the GGUF plan refuses it in a block. IQ3_XXS and IQ3_S have
// *_ref entries (ggml's quantize_row_*_ref).
//
// Row functions take n elements (a multiple of 256) of ONE tensor row; nothing spans rows
// except ggml's stale scratch in a degenerate case (an all-zero 32-element IQ1 sub-block takes
// the delta sign of the sub-block before it within the row; ggml's carries across rows).
// Thread-safety: the grid and neighbour tables are built once on first use (thread-safe).
#pragma once
#include <cstdint>

#include "quant/formats/ggml_types.h"

namespace sr {

void dequantize_row_iq2_xxs(const void* blocks, float* y, int64_t n);
void dequantize_row_iq2_xs(const void* blocks, float* y, int64_t n);
void dequantize_row_iq2_s(const void* blocks, float* y, int64_t n);
void dequantize_row_iq3_xxs(const void* blocks, float* y, int64_t n);
void dequantize_row_iq3_s(const void* blocks, float* y, int64_t n);
void dequantize_row_iq1_s(const void* blocks, float* y, int64_t n);
void dequantize_row_iq1_m(const void* blocks, float* y, int64_t n);

// With importance `weights` [n] (REQUIRED non-null; throws sr::Error otherwise).
void quantize_row_iq2_xxs_weighted(const float* x, void* blocks, int64_t n, const float* weights);
void quantize_row_iq2_xs_weighted(const float* x, void* blocks, int64_t n, const float* weights);
void quantize_row_iq2_s_weighted(const float* x, void* blocks, int64_t n, const float* weights);
void quantize_row_iq3_xxs_weighted(const float* x, void* blocks, int64_t n, const float* weights);
void quantize_row_iq3_s_weighted(const float* x, void* blocks, int64_t n, const float* weights);
void quantize_row_iq1_s_weighted(const float* x, void* blocks, int64_t n, const float* weights);
void quantize_row_iq1_m_weighted(const float* x, void* blocks, int64_t n, const float* weights);

// Without importance: ggml's quantize_row_*_ref for IQ3_XXS and IQ3_S, ggml's x^2 weights for
// IQ1_M; the others throw sr::Error (llama.cpp: "Missing importance matrix ... in a very low-bit quantization").
void quantize_row_iq2_xxs_ref(const float* x, void* blocks, int64_t n);
void quantize_row_iq2_xs_ref(const float* x, void* blocks, int64_t n);
void quantize_row_iq2_s_ref(const float* x, void* blocks, int64_t n);
void quantize_row_iq3_xxs_ref(const float* x, void* blocks, int64_t n);
void quantize_row_iq3_s_ref(const float* x, void* blocks, int64_t n);
void quantize_row_iq1_s_ref(const float* x, void* blocks, int64_t n);
void quantize_row_iq1_m_ref(const float* x, void* blocks, int64_t n);

// ggml_validate_row_data's check of one IQ1_M block: its fp16 d (in the scale nibbles) is
// finite. The other types keep their fp16 d at offset 0.
bool iq1_m_block_finite(const uint8_t* block);

// ---- frozen scales, tunable rounding (SignRound on the grid types, issue 16 part 4) ----------
//
// The scales a search stored (d, the sub-block codes, IQ1's delta signs) stay; only the grid
// points and signs are re-chosen, from the element values shifted by SignRound's offsets v.
// Per element e of sub-block scale db (decoded as above), in "odd units" of the lattice
// (coordinate levels l at 2l + 1; IQ2: s = 8 db, IQ3_XXS: 4 db, IQ3_S: db), or in IQ1's level
// units (levels -1, 0, 1 at g + delta; s = dl):
//   y_e = x_e / s  (IQ1: x_e / s - delta), q_e the stored point's signed coordinate,
//   y'_e = y_e clamped into q_e's rounding cell (q - 1, q + 1) (IQ1: (q - 1/2, q + 1/2)), a cell
//          open at the outermost levels (kFromStoredCodes; kNearest: y'_e = y_e),
//   u_e = y'_e + 2 v_e  (IQ1: y'_e + v_e): v in level units, |v| <= 1/2 moves one level,
//   signs from u (IQ2_XXS/IQ2_XS/IQ3_XXS: an odd count in a group of 8 flips its element of
//   least w u^2, whose magnitude then counts negative, as the encoders do),
//   the group's point: nearest_grid_point at scale 1 on |u| (the encoders' lattice rounding
//   and neighbour-table snap, neighbours weighed by sqrt(w)); IQ1: u rounded to {-1, 0, 1},
//   snapped by iq1_find_best_neighbour with the group's frozen delta, neighbours weighed by w.
// kFromStoredCodes at v = 0 gives the stored codes exactly (every coordinate stays in its
// stored cell, and the stored point is on the grid): the tuning starts from the search's own
// file (llama.cpp's, for the imatrix search). x_hat is the decoding of the written blocks
// (dequantize_row_* of them), so encode and qdq agree bit for bit.
// Straight-through derivative: d x_hat_e / d v_e = 2 s (IQ1: s), the value of one level step;
// 0 in a super-block with d == 0 (kept as stored) or where s is not positive.
// w [n] are per-element weights (iq_grid_weights); null means x^2.

enum class IqGridRounding : uint8_t { kFromStoredCodes, kNearest };

// True for IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M.
bool iq_grid_type(GgmlType type);
// Elements per sub-block sharing one scale code: 32, or 16 (IQ2_XS, IQ2_S, IQ1_M).
int iq_grid_sub_block(GgmlType type);
// The encoder's per-element weights for x [n]: importance[e] * sqrt(sigma2 + x[e]^2) (sigma2 as
// the type's encoder computes it per super-block), x[e]^2 where importance is null.
void iq_grid_weights(GgmlType type, const float* x, const float* importance, int64_t n, float* w);
// The effective scale db of each sub-block of stored blocks, scale [n / iq_grid_sub_block].
void iq_grid_row_scales(GgmlType type, const void* blocks, int64_t n, float* scale);
// Signed grid values of stored blocks (x_hat = db * q): sign * grid coordinate. Throws for
// IQ1_S / IQ1_M, whose values g + delta are not integers.
void iq_grid_unpack_values(GgmlType type, const void* blocks, int64_t n, int16_t* q);
// The frozen rounding of one row x [n] with offsets v [n] (null = 0) against `blocks` (the
// stored search). Writes the re-coded blocks to `out` (may be null), their decoding to x_hat
// (may be null) and the derivative to dv (may be null). Throws sr::Error if an x or v that sets
// a code is not finite.
void iq_grid_frozen_row(GgmlType type, const void* blocks, const float* x, const float* w, const float* v,
                        int64_t n, void* out, float* x_hat, float* dv,
                        IqGridRounding rounding = IqGridRounding::kFromStoredCodes);

}  // namespace sr
