// What every number format shares: grouping a weight into rows of one group each (spec §0.1),
// the tunable parameters (§1, §1.7), the qdq result, the encoded form that export packs, and
// the library's single straight-through-estimator mechanism (§0.2).
//
// Shape letters used in every quant/ header:
//   O  rows of the weight (out features); for activations, all leading dims flattened (tokens)
//   I  columns (in features / hidden size)
//   G  the group_size parameter: > 0 groups of G along I, -1 one group per row, 0 one group for
//      the whole tensor
//   L  elements in one group row: G; I when G = -1 or I < G; O·I when G = 0
//   P  padding zeros appended to each row when G > 0, I > G and I % G != 0 (P = ceil(I/G)·G - I)
//   N  number of groups: O·ceil(I/G); O (per row); 1 (per tensor)
//   C  groups per row in the [O, C] scale matrix: ceil(I/G); 1 per row; per tensor: one [1, 1]
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/torch.h"

namespace sr {

// How a tensor of a given shape is cut into groups (auto-round reshape_pad_tensor_by_group_size).
struct GroupLayout {
  std::vector<int64_t> shape;  // the original shape (any rank >= 1; leading dims are rows)
  int64_t rows = 0;            // O
  int64_t cols = 0;            // I
  int64_t group_size = 0;      // G as given
  int64_t length = 0;          // L
  int64_t pad = 0;             // P
  int64_t per_row = 0;         // C
  int64_t n_groups = 0;        // N
  bool per_tensor() const { return group_size == 0; }
};

// REQUIRES: shape has rank >= 1 and no zero dim; group_size > 0, -1 or 0 (else sr::Error).
GroupLayout group_layout(at::IntArrayRef shape, int64_t group_size);

// [.., I] -> [N, L]: reshape, padding each row with pad_value first when P > 0 (zeros for
// weights, 1e-5 for an imatrix, §0.1). A view when no padding is needed and w is contiguous.
at::Tensor to_groups(const at::Tensor& w, const GroupLayout& g, double pad_value = 0.0);
// [N, L] -> original shape, dropping the padding.
at::Tensor from_groups(const at::Tensor& wg, const GroupLayout& g);
// Per-group values [N] -> the [O, C] matrix export stores ([1, 1] per tensor), and back.
at::Tensor groups_to_matrix(const at::Tensor& per_group, const GroupLayout& g);
at::Tensor matrix_to_groups(const at::Tensor& matrix, const GroupLayout& g);
// Per-input-channel importance [I] laid out like the grouped weight [N, L]: padded with 1e-5,
// broadcast over rows (auto-round reshape_imatrix_for_weight, spec §3.2). Undefined -> ones.
at::Tensor imatrix_to_groups(const at::Tensor& imatrix, const GroupLayout& g);

// The tunable parameters of one weight (spec §1). All fp32. An undefined tensor means "not
// tuned": v = 0, alpha = beta = 1, no init scale. Families ignore what they do not use
// (MX/NV/FP8 never read alpha; alpha is also ignored in int sym init-scale mode).
struct Tunables {
  at::Tensor v;           // [N, L] rounding offsets (padding included)
  at::Tensor alpha;       // [N] min-scale multiplier (INT only, SignRound v1)
  at::Tensor beta;        // [N] max-scale multiplier
  at::Tensor init_scale;  // [N] searched initial scale (§3.3; v2 and opt-RTN)
};
// Throws sr::Error naming `fn` when a defined tunable has the wrong shape or dtype.
void check_tunables(const Tunables& t, const GroupLayout& g, const char* fn);

// Throws sr::Error naming `fn` unless group_size is > 0, -1 or 0.
void check_group_size(int64_t group_size, const char* fn);

// A weight w [.., I] as fp32 groups wg [N, L] with their layout; the tunables are checked
// against it (errors name `fn`).
struct GroupedWeight {
  GroupLayout g;
  at::Tensor wg;
};
GroupedWeight group_weight(const at::Tensor& w, int64_t group_size, const Tunables& t, const char* fn);

// Result of a quantize-dequantize. Meaning of scale/zp per family (see each header):
// INT: scale [N] (fp16 values held in fp32, signed for sym), zp [N] (integers held in fp32);
// MX: scale [N] = the shared exponent E, zp undefined; NV: scale [N] = the E4M3 block scale,
// zp undefined; FP8: scale [N] fp32, zp undefined.
struct QdqResult {
  at::Tensor w_hat;  // same shape as the input, fp32
  at::Tensor scale;  // [N]
  at::Tensor zp;     // [N] or undefined
};

// What export packs: integer codes plus scales, one row of scales per weight row.
// decode(encode(w)) equals qdq(w).w_hat bit for bit (same arithmetic, tested).
struct Encoded {
  at::Tensor codes;         // same shape as w, uint8 (INT: q + zp in [0, 2^b-1]; E2M1 code in the
                            // low nibble; E4M3 byte)
  at::Tensor scales;        // [O, C]: INT fp16, MX uint8 E8M0, NV uint8 E4M3, FP8 fp32
  at::Tensor zeros;         // [O, C] uint8 zero points (INT only)
  at::Tensor global_scale;  // [1] fp32 (NV only)
  at::Tensor ggml;          // [O, row bytes] uint8: the ggml rows of a GGUF block type, exactly as
                            // a GGUF file stores them (quant/gguf_qdq.h); the fields above stay
                            // undefined for those types
};

// The one straight-through estimator (spec §0.2, style.md #6): the forward value is `value`,
// the gradient is that of `surrogate`. Computed as (value - surrogate).detach() + surrogate,
// which returns `value` exactly whenever value - surrogate is exact in fp32 — true for every
// rounding here (Sterbenz: the rounded value lies within a factor 2 of its input, or is 0).
// One visible effect, shared with auto-round: a rounded zero always comes out as +0.0.
inline at::Tensor ste(const at::Tensor& value, const at::Tensor& surrogate) {
  return (value - surrogate).detach() + surrogate;
}

// Safe reciprocal (spec §0.3, nvfp.py local variant): 1/x, and 0 where x == 0. Its gradient
// is 0 where x == 0 (auto-round's gives NaN there; see docs/decisions.md).
at::Tensor recip(const at::Tensor& x);

// Max |w| per group row: [N, L] -> [N].
at::Tensor group_amax(const at::Tensor& wg);
// amax · (init_scale · β) of the MX and NV block scales, absent factors left out.
at::Tensor scaled_amax(const at::Tensor& amax, const Tunables& t);

// Shared by the MX and NV initial-scale searches (§3.3.2, §3.3.3): per group, the candidate
// amax multiplier c whose qdq (qdq_with_init(init_scale filled with c) -> ŵ [N, L]) has the
// smallest Σ importance·(ŵ - w)². Strictly lower wins, so ties keep the earlier candidate;
// candidates[0] is the baseline. wg, importance: [N, L]. Returns [N] fp32. No gradient.
at::Tensor search_best_multiplier(const at::Tensor& wg, const at::Tensor& importance,
                                  const std::vector<float>& candidates,
                                  const std::function<at::Tensor(const at::Tensor&)>& qdq_with_init);

// True when the fused CPU kernels can serve this call: every tensor on the CPU in fp32 and
// init_scale not requiring grad (it is a constant of the search).
bool fused_eligible(const at::Tensor& w, const Tunables& t);

}  // namespace sr
