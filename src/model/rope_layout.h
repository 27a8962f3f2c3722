// The two row orders of a q or k projection (and its bias), per head of hd rows:
//
//   HF (rotate-half RoPE)      row half*hd/2 + i   rotates with row i + hd/2 (pairs (i, i+hd/2))
//   interleaved (GGUF, llama2.c) row 2*i + half      rotates with its neighbour (pairs (2i, 2i+1))
//
// for i in [0, hd/2), half in {0, 1}. llama.cpp's convert_hf_to_gguf.py permutes HF
// checkpoints into the interleaved order (LlamaModel.permute, with the kv head count
// for k), and llama2.c checkpoints are stored that way; both orders compute the same
// model. Only whole rows move, so the permutation applies equally to fp32 rows and to
// encoded ggml rows (blocks run along a row).
//
// Thread-safety: pure functions.
#pragma once
#include <cstdint>
#include <vector>

#include "common/torch.h"

namespace sr {

// For each interleaved row r (0 <= r < rows), the HF row stored there.
// REQUIRES: rows % heads == 0 and (rows / heads) even (throws otherwise).
std::vector<int64_t> interleaved_row_sources(int64_t rows, int64_t heads);

// Interleaved -> HF: w [rows, ...] (rows = heads * hd); returns a new contiguous tensor.
at::Tensor uninterleave_qk_rows(const at::Tensor& w, int64_t heads);

}  // namespace sr
