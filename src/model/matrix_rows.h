// Rows of the model's two vocabulary-sized matrices, a chunk at a time, for exporters that
// encode them without holding them whole: a Qwen3-8B embedding or lm_head (151936 x 4096) is
// 2.5 GB in fp32 and 1.2 GB as stored (BF16).
#pragma once
#include <cstdint>
#include <string>

#include "common/torch.h"
#include "model/model.h"

namespace sr {

// Rows [r0, r0 + n) of "model.embed_tokens.weight" or "lm_head.weight" (the embedding's when
// tied), as a fresh contiguous fp32 tensor [n, hidden]: the same values as the rows of
// Model::embedding() / lm_head(). Where the model leaves the matrix in its mapped file (a plain
// F32/F16/BF16 safetensors entry: Model's lazy case) they are converted from the file (exactly)
// and the entry's pages are dropped from the resident set after; otherwise (GGUF, packed
// folders: decoded at open) they are copied from the decoded matrix.
// Throws naming the tensor for another name or rows outside [0, vocab).
at::Tensor vocab_matrix_rows(const Model& m, const std::string& hf_name, int64_t r0, int64_t n);

}  // namespace sr
