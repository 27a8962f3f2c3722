// fp32 rows -> ggml bytes for a GGUF tensor, rows in parallel.
//
// Each row is encoded on its own (the imatrix encoders compute statistics per row,
// exactly as llama-quantize calls them), so the bytes do not depend on how rows are
// split across threads: the output is deterministic and, for the ref encoders,
// identical to llama-quantize's.
#pragma once
#include <cstdint>
#include <vector>

#include "quant/formats/ggml_types.h"

namespace sr {

// x [rows, n] row-major; imatrix [n] per-column importance or nullptr (ref encoder).
// Returns rows * ggml_row_bytes(type, n) bytes. Throws if the type has no codec or n
// is not a multiple of its block size.
std::vector<uint8_t> ggml_encode_rows(GgmlType type, const float* x, int64_t rows, int64_t n,
                                      const float* imatrix = nullptr);

// Rows of `row_bytes` bytes reordered: output row r is input row src[r].
// REQUIRES: every src[r] in [0, src.size()).
std::vector<uint8_t> permute_byte_rows(const uint8_t* data, uint64_t row_bytes, const std::vector<int64_t>& src);

}  // namespace sr
