#include "model/rope_layout.h"

#include "common/error.h"

namespace sr {
namespace {

void check_rows(int64_t rows, int64_t heads) {
  SR_CHECK(heads > 0 && rows % heads == 0 && (rows / heads) % 2 == 0, "[rope] cannot permute ", rows,
           " q/k rows over ", heads, " heads: rows must be heads x an even head_dim");
}

// w viewed as [heads, a, b, ...tail] with a*b = hd, then a and b swapped.
at::Tensor swap_head_axes(const at::Tensor& w, int64_t heads, int64_t a, int64_t b) {
  auto tail = w.sizes().slice(1).vec();
  std::vector<int64_t> split = {heads, a, b};
  split.insert(split.end(), tail.begin(), tail.end());
  return w.reshape(split).transpose(1, 2).reshape(w.sizes()).contiguous();
}

}  // namespace

std::vector<int64_t> interleaved_row_sources(int64_t rows, int64_t heads) {
  check_rows(rows, heads);
  const int64_t hd = rows / heads;
  std::vector<int64_t> src(static_cast<size_t>(rows));
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < hd / 2; ++i)
      for (int64_t half = 0; half < 2; ++half) src[size_t(h * hd + 2 * i + half)] = h * hd + half * (hd / 2) + i;
  return src;
}

at::Tensor uninterleave_qk_rows(const at::Tensor& w, int64_t heads) {
  check_rows(w.size(0), heads);
  return swap_head_axes(w, heads, w.size(0) / heads / 2, 2);  // (i, half) -> (half, i)
}

}  // namespace sr
