#include "tensor_asserts.h"

#include "common/half.h"

namespace sr::test {

::testing::AssertionResult same_bits(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes())
    return ::testing::AssertionFailure() << "shapes " << a.sizes() << " vs " << b.sizes();
  auto ai = a.detach().to(at::kFloat).contiguous().view(at::kInt).reshape(-1);
  auto bi = b.detach().to(at::kFloat).contiguous().view(at::kInt).reshape(-1);
  auto diff = (ai != bi).nonzero();
  if (diff.numel() == 0) return ::testing::AssertionSuccess();
  const int64_t i = diff[0][0].item<int64_t>();
  return ::testing::AssertionFailure()
         << diff.numel() << " of " << ai.numel() << " differ; first at " << i << ": "
         << f32_from_bits(uint32_t(ai[i].item<int>())) << " vs " << f32_from_bits(uint32_t(bi[i].item<int>()));
}

}  // namespace sr::test
