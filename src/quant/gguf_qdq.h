// GGUF block types as a quantization family (spec §3.6, §5.4): a weight W [O, I] is quantized
// row by row with llama.cpp's block codecs (quant/formats/ggml_*), so that what is tuned is
// exactly what a GGUF file stores.
//
//   freeze   searches each row's block parameters once (llama.cpp's imatrix encoder with the
//            importance vector, or its ref encoder without one) and keeps them: per sub-block g
//            the effective scale s_g and min m_g the stored headers decode to (ggml_frozen.h).
//   qdq      ŵ = s_g·clamp(rne((w + m_g)/s_g + v), qmin, qmax) − m_g   (asymmetric types)
//            ŵ = s_g·clamp(rne(w/s_g + v), qmin, qmax)                  (symmetric types)
//            with the frozen s, m and trainable offsets v [O·I]; sub-blocks with s_g = 0 keep
//            their searched codes.
//   encode   the ggml rows [O, row_bytes] whose headers are the frozen ones and whose codes
//            are qdq's, so decode(encode(w, f, v)) == qdq(w, f, v) bit for bit.
//   decode   ggml's dequantize_row, row by row.
//
// Gradient contract (straight-through, §0.2): ∂ŵ/∂v[e] = s_g where the rounded code lies in
// [qmin, qmax] (ends included), 0 where it is clamped or s_g = 0; ∂ŵ/∂w[e] = 1 where ∂ŵ/∂v ≠ 0,
// else 0 (s and m are constants of the search). The CPU path is a custom autograd Function over
// ggml_qdq_row_frozen_grad; qdq_reference composes the same formula with torch ops and ste()
// (any device; equal values bit for bit, equal gradients).
//
// Shapes: w [O, I] (any float dtype, used as fp32); v anything with O·I elements (the
// dispatcher's [N, L] grouping with L = the sub-block) or undefined (= 0).
// Thread-safety: Frozen is immutable after freeze(); rows are processed in parallel.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "common/torch.h"
#include "quant/formats/ggml_frozen.h"

namespace sr::gguf_qdq {

// The frozen parameters of one weight.
struct Frozen {
  GgmlType type = GgmlType::Q8_0;
  int64_t rows = 0, cols = 0;       // O, I
  std::vector<GgmlRowParams> row;   // [O]
  // true: encode() returns the searched blocks verbatim, i.e. llama.cpp's own bytes
  // (quantize_row_ref, or quantize_row_weighted with the importance), and qdq() their
  // decoding; offsets are refused. This is RTN / optimized RTN. false: codes are re-rounded
  // against the frozen parameters with the offsets (SignRound).
  bool searched_codes = false;
};

// Searches w [O, I] row by row (in parallel): ggml_search_row_weighted with `importance` [I]
// when defined (llama.cpp's imatrix semantics: mean of x² per input channel), else
// ggml_search_row_ref. REQUIRES: ggml_has_block_params(type), I a multiple of its block
// size, w finite where llama.cpp reads it (throws sr::Error naming the type otherwise).
std::shared_ptr<const Frozen> freeze(const at::Tensor& w, GgmlType type, const at::Tensor& importance,
                                     bool searched_codes);

// ŵ [O, I] fp32 (contract above), differentiable w.r.t. v and w. With f.searched_codes the
// decoded searched blocks (no gradient); v must then be undefined.
at::Tensor qdq(const at::Tensor& w, const Frozen& f, const at::Tensor& v = {});
// The same with composed torch ops and ste() (reference for tests; any device).
at::Tensor qdq_reference(const at::Tensor& w, const Frozen& f, const at::Tensor& v = {});

// The ggml rows: uint8 [O, ggml_row_bytes(f.type, I)], rows in w's order. Throws if an x or v
// that sets a code is not finite.
at::Tensor encode(const at::Tensor& w, const Frozen& f, const at::Tensor& v = {});
// ggml rows -> fp32 [O, cols], bit-identical to ggml's dequantization.
// REQUIRES: bytes uint8 [O, ggml_row_bytes(type, cols)] (throws otherwise).
at::Tensor decode(const at::Tensor& bytes, GgmlType type, int64_t cols);
// The element count of one row stored in `row_bytes` bytes of `type`.
int64_t cols_of(GgmlType type, int64_t row_bytes);

}  // namespace sr::gguf_qdq
