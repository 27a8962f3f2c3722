#include "export/gguf_encode.h"

#include <cstring>

#include "common/error.h"
#include "common/torch.h"

namespace sr {

std::vector<uint8_t> ggml_encode_rows(GgmlType type, const float* x, int64_t rows, int64_t n, const float* imatrix) {
  const GgmlTypeTraits& tr = ggml_codec(type);
  const uint64_t row_bytes = ggml_row_bytes(type, n);  // checks the block size
  std::vector<uint8_t> out(row_bytes * uint64_t(rows));
  // k-quant searches cost ~1 us per element: a few rows per task keep threads busy.
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1));
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      uint8_t* dst = out.data() + uint64_t(r) * row_bytes;
      if (imatrix) tr.quantize_row_weighted(x + r * n, dst, n, imatrix);
      else tr.quantize_row_ref(x + r * n, dst, n);
    }
  });
  return out;
}

std::vector<uint8_t> permute_byte_rows(const uint8_t* data, uint64_t row_bytes, const std::vector<int64_t>& src) {
  std::vector<uint8_t> out(row_bytes * src.size());
  for (size_t r = 0; r < src.size(); ++r) {
    SR_CHECK(src[r] >= 0 && size_t(src[r]) < src.size(), "[gguf] row permutation entry ", src[r], " out of range");
    std::memcpy(out.data() + r * row_bytes, data + uint64_t(src[r]) * row_bytes, row_bytes);
  }
  return out;
}

}  // namespace sr
