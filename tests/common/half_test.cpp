// fp16/bf16 scalar converters against libtorch's own casts, over every fp16 code
// and a sweep of fp32 values including ties, subnormals and overflow.
#include "common/half.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/torch.h"

namespace sr {

TEST(Half, EveryF16CodeDecodesLikeTorch) {
  auto codes = at::arange(0, 65536, at::kInt).to(at::kShort);
  auto ref = codes.view(at::kHalf).to(at::kFloat);
  auto r = ref.accessor<float, 1>();
  for (int c = 0; c < 65536; ++c) {
    float mine = f16_to_f32(uint16_t(c));
    if (std::isnan(r[c])) {
      EXPECT_TRUE(std::isnan(mine)) << c;
    } else {
      EXPECT_EQ(f32_bits(mine), f32_bits(r[c])) << "code " << c;
    }
  }
}

TEST(Half, F32ToF16AndBf16RoundLikeTorch) {
  // Random bit patterns across the whole fp32 range plus hand-picked ties.
  auto x = at::randint(0, 1LL << 31, {200000}, at::kLong).to(at::kInt).view(at::kFloat);
  std::vector<float> extra = {65504.f, 65519.f, 65520.f, 1e-8f, 5.96e-8f, 2.98e-8f, 2.9802322e-08f,
                              1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, -0.0f, 6.1035156e-05f, 6.1e-05f};
  auto all = at::cat({x, at::tensor(extra), -at::tensor(extra)});
  auto h = all.to(at::kHalf).view(at::kShort);
  auto b = all.to(at::kBFloat16).view(at::kShort);
  auto pa = all.accessor<float, 1>();
  auto ph = h.accessor<int16_t, 1>();
  auto pb = b.accessor<int16_t, 1>();
  for (int64_t i = 0; i < all.size(0); ++i) {
    if (std::isnan(pa[i])) continue;
    ASSERT_EQ(f32_to_f16(pa[i]), uint16_t(ph[i])) << "value " << pa[i];
    ASSERT_EQ(f32_to_bf16(pa[i]), uint16_t(pb[i])) << "value " << pa[i];
  }
}

}  // namespace sr
