// Element codecs against the OCP specs' worked values (ties included), every code of every
// format, and scalar/tensor agreement bit for bit.
//   OCP Microscaling Formats (MX) v1.0, §5.3.3 (FP4 E2M1), §5.4.1 (E8M0); OCP 8-bit Floating
//   Point (OFP8) rev 1.0, Table 1 (E4M3: max 448, NaN 0x7f/0xff, no inf, subnormals 2^-9).
#include "quant/formats/fp_codecs.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "common/error.h"
#include "quant/formats/fused.h"

namespace sr::codec {
namespace {

uint32_t bits(float f) { return f32_bits(f); }

at::Tensor vec(const std::vector<float>& v) { return at::tensor(v); }

// Special and random fp32 values used for scalar/tensor agreement.
std::vector<float> sweep() {
  std::vector<float> v = {0.0f, -0.0f, 1e-45f, -1e-45f, 1e-40f, 1.1754942e-38f, 1.1754944e-38f,
                          0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 5.1f, 6.0f, 7.0f, 1e30f,
                          448.0f, 464.0f, 465.0f, 480.0f, 1e9f, 0.001953125f, 0.0009765625f,
                          0.0029296875f, std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(), 7.9999995f, 8.0f, 8.000001f};
  auto r = at::randint(0, (int64_t(1) << 31) - 1, {20000}, at::kLong).to(at::kInt).view(at::kFloat);
  auto s = at::randn({20000}) * 300.0;
  for (auto* t : {&r, &s}) {
    auto p = t->contiguous();
    for (int64_t i = 0; i < p.numel(); ++i) {
      float x = p.data_ptr<float>()[i];
      if (!std::isnan(x)) v.push_back(x), v.push_back(-x);
    }
  }
  return v;
}

TEST(E2M1, OcpWorkedValuesAndTiesToEven) {
  // OCP MX §5.3.3 grid {0, .5, 1, 1.5, 2, 3, 4, 6}; one exact midpoint (or more) per binade:
  // subnormal [0,1) step .5: 0.25, 0.75; [1,2) step .5: 1.25, 1.75; [2,4) step 1: 2.5, 3.5;
  // [4,6] step 2: 5.
  const std::vector<std::pair<float, float>> cases = {
      {0.25f, 0.0f}, {0.75f, 1.0f}, {1.25f, 1.0f}, {1.75f, 2.0f}, {2.5f, 2.0f}, {3.5f, 4.0f},
      {5.0f, 4.0f},  {5.1f, 6.0f},  {0.4f, 0.5f},  {2.9f, 3.0f},  {6.0f, 6.0f}, {6.2f, 6.0f},
      {7.0f, 6.0f},  {1e30f, 6.0f}, {INFINITY, 6.0f}, {0.2499f, 0.0f}, {0.2501f, 0.5f}};
  for (auto [x, want] : cases) {
    EXPECT_EQ(e2m1_round(x), want) << x;
    EXPECT_EQ(e2m1_round(-x), -want) << -x;
    EXPECT_EQ(e2m1_decode(e2m1_encode(x)), want) << x;
    EXPECT_EQ(e2m1_decode(e2m1_encode(-x)), -want) << -x;
  }
}

TEST(E2M1, SignedZeroAndCodes) {
  EXPECT_EQ(e2m1_encode(0.0f), 0x0);
  EXPECT_EQ(e2m1_encode(-0.0f), 0x8);
  EXPECT_TRUE(std::signbit(e2m1_decode(0x8)));
  EXPECT_EQ(e2m1_encode(-0.2f), 0x8);  // rounds to -0
  EXPECT_EQ(e2m1_encode(6.0f), 0x7);
  EXPECT_EQ(e2m1_encode(-6.0f), 0xf);
  EXPECT_EQ(e2m1_encode(1.5f), 0x3);
  EXPECT_EQ(e2m1_encode(-4.0f), 0xe);
  for (int c = 0; c < 16; ++c) EXPECT_EQ(e2m1_encode(e2m1_decode(uint8_t(c))), c) << c;
}

TEST(E4M3, OfpWorkedValues) {
  EXPECT_EQ(e4m3_encode(448.0f), 0x7e);
  EXPECT_EQ(e4m3_decode(0x7e), 448.0f);
  EXPECT_EQ(e4m3_decode(0x08), std::ldexp(1.0f, -6));  // min normal
  EXPECT_EQ(e4m3_decode(0x01), std::ldexp(1.0f, -9));  // min subnormal
  EXPECT_EQ(e4m3_decode(0x07), 7 * std::ldexp(1.0f, -9));
  EXPECT_TRUE(std::isnan(e4m3_decode(0x7f)));
  EXPECT_TRUE(std::isnan(e4m3_decode(0xff)));
  EXPECT_EQ(e4m3_encode(NAN), 0x7f);
  EXPECT_EQ(e4m3_encode(-NAN), 0xff);
  // saturation, not NaN, beyond the max (and for inf)
  for (float x : {449.0f, 464.0f, 480.0f, 1e9f, INFINITY}) {
    EXPECT_EQ(e4m3_round(x), 448.0f) << x;
    EXPECT_EQ(e4m3_encode(-x), 0xfe) << x;
  }
  EXPECT_EQ(e4m3_encode(-0.0f), 0x80);
  EXPECT_EQ(e4m3_encode(0.0f), 0x00);
}

TEST(E4M3, TiesToEvenInEveryBinade) {
  // For each binade e in [-6, 8]: (1 + 1/16)·2^e lies between mantissas 0 and 1 -> even (0);
  // (1 + 3/16)·2^e lies between 1 and 2 -> even (2).
  for (int e = -6; e <= 8; ++e) {
    const float lo = std::ldexp(1.0f + 1.0f / 16, e), hi = std::ldexp(1.0f + 3.0f / 16, e);
    EXPECT_EQ(e4m3_round(lo), std::ldexp(1.0f, e)) << e;
    EXPECT_EQ(e4m3_round(hi), std::ldexp(1.25f, e)) << e;
    EXPECT_EQ(e4m3_round(-hi), -std::ldexp(1.25f, e)) << e;
  }
  // subnormal range, step 2^-9: 0.5 step -> 0 (even), 1.5 -> 2, 2.5 -> 2
  const float q = std::ldexp(1.0f, -9);
  EXPECT_EQ(e4m3_round(0.5f * q), 0.0f);
  EXPECT_EQ(e4m3_round(1.5f * q), 2 * q);
  EXPECT_EQ(e4m3_round(2.5f * q), 2 * q);
  EXPECT_EQ(e4m3_round(7.5f * q), 8 * q);  // carries into the first normal binade
  EXPECT_EQ(e4m3_round(432.0f), 448.0f);   // 416 and 448 tie -> even mantissa (448)
  EXPECT_EQ(e4m3_round(400.0f), 384.0f);   // 384 and 416 tie -> even (384)
}

TEST(E4M3, EveryCodeDecodesAndReencodes) {
  for (int c = 0; c < 256; ++c) {
    const float v = e4m3_decode(uint8_t(c));
    EXPECT_EQ(e4m3_encode(v), c) << c;
    if (!std::isnan(v)) EXPECT_EQ(bits(e4m3_round(v)), bits(v)) << c;
  }
  auto codes = at::arange(0, 256, at::kInt).to(at::kByte);
  auto dec = e4m3_decode(codes);
  EXPECT_TRUE(at::equal(e4m3_encode(dec), codes));
}

TEST(E8M0, ScaleBytes) {
  EXPECT_EQ(e8m0_decode(127), 1.0f);
  EXPECT_EQ(e8m0_decode(0), std::ldexp(1.0f, -127));  // fp32 subnormal, exact
  EXPECT_EQ(e8m0_decode(254), std::ldexp(1.0f, 127));
  EXPECT_TRUE(std::isnan(e8m0_decode(0xff)));
  EXPECT_EQ(e8m0_encode(-127), 0);
  EXPECT_EQ(e8m0_encode(0), 127);
  EXPECT_EQ(e8m0_encode(127), 254);
  auto bytes = at::arange(0, 256, at::kInt).to(at::kByte);
  auto dec = e8m0_decode(bytes);
  for (int b = 0; b < 256; ++b) {
    const float want = e8m0_decode(uint8_t(b));
    const float got = dec[b].item<float>();
    if (b == 255) EXPECT_TRUE(std::isnan(got));
    else EXPECT_EQ(bits(got), bits(want)) << b;
  }
  EXPECT_TRUE(at::equal(e8m0_encode(at::arange(-127, 128).to(at::kFloat)), bytes.narrow(0, 0, 255)));
  EXPECT_THROW(e8m0_encode(vec({128.0f})), sr::Error);
  EXPECT_THROW(e8m0_encode(vec({-128.0f})), sr::Error);
  EXPECT_THROW(e8m0_encode(vec({0.5f})), sr::Error);
}

TEST(ExponentHelpers, ExactIncludingSubnormals) {
  for (float x : sweep()) {
    if (x == 0 || std::isinf(x)) continue;
    int e;
    std::frexp(x, &e);  // x = m·2^e with |m| in [0.5, 1)
    EXPECT_EQ(floor_log2(x), e - 1) << x;
    EXPECT_EQ(ceil_log2(x), std::fabs(x) == std::ldexp(1.0f, e - 1) ? e - 1 : e) << x;
  }
  for (int e = -149; e <= 127; ++e) EXPECT_EQ(pow2(e), std::ldexp(1.0f, e)) << e;
  auto es = at::arange(-149, 128).to(at::kFloat);
  auto p = pow2(es);
  for (int e = -149; e <= 127; ++e) EXPECT_EQ(p[e + 149].item<float>(), std::ldexp(1.0f, e));
  // log2 would give floor 3 here (7.9999995 is 2^3 - 2^-21): the bit rule gives 2
  EXPECT_EQ(floor_log2(7.9999995f), 2);
  EXPECT_EQ(floor_log2(vec({7.9999995f}))[0].item<float>(), 2.0f);
}

TEST(TensorCodecs, AgreeWithScalarBitForBit) {
  auto xs = sweep();
  auto t = vec(xs);
  auto fl = floor_log2(t), cl = ceil_log2(t), r2 = e2m1_round(t), r4 = e4m3_round(t);
  auto c2 = e2m1_encode(t), c4 = e4m3_encode(t);
  for (size_t i = 0; i < xs.size(); ++i) {
    const float x = xs[i];
    if (x != 0 && !std::isinf(x)) {
      EXPECT_EQ(fl[i].item<float>(), float(floor_log2(x))) << x;
      EXPECT_EQ(cl[i].item<float>(), float(ceil_log2(x))) << x;
    }
    EXPECT_EQ(bits(r2[i].item<float>()), bits(e2m1_round(x))) << x;
    EXPECT_EQ(bits(r4[i].item<float>()), bits(e4m3_round(x))) << x;
    EXPECT_EQ(c2[i].item<uint8_t>(), e2m1_encode(x)) << x;
    EXPECT_EQ(c4[i].item<uint8_t>(), e4m3_encode(x)) << x;
  }
  auto d2 = e2m1_decode(at::arange(0, 16, at::kInt).to(at::kByte));
  for (int c = 0; c < 16; ++c) EXPECT_EQ(bits(d2[c].item<float>()), bits(e2m1_decode(uint8_t(c))));
  EXPECT_THROW(e2m1_encode(vec({NAN})), sr::Error);
  EXPECT_THROW(e2m1_decode(vec({16.0f}).to(at::kByte)), sr::Error);
}

TEST(FusedRounding, BranchFreeTwinsEqualTheCodecsOnTheirDomain) {
  for (float x : sweep()) {
    if (std::isnan(x)) continue;
    const float a6 = std::fmin(std::fmax(x, -6.0f), 6.0f), a448 = std::fmin(std::fmax(x, -448.0f), 448.0f);
    EXPECT_EQ(bits(fused::e2m1_round(a6)), bits(e2m1_round(a6))) << x;
    EXPECT_EQ(bits(fused::e4m3_round(a448)), bits(e4m3_round(a448))) << x;
    EXPECT_EQ(bits(fused::e2m1_round(a6 / 64)), bits(e2m1_round(a6 / 64))) << x;
    EXPECT_EQ(bits(fused::e4m3_round(a448 / 1e6f)), bits(e4m3_round(a448 / 1e6f))) << x;
  }
  for (int c = 0; c < 256; ++c) {  // every E4M3 value and every midpoint between neighbours
    const float v = e4m3_decode(uint8_t(c)), n = e4m3_decode(uint8_t(c + 1 < 256 ? c + 1 : c));
    if (std::isnan(v) || std::isnan(n) || std::fabs(v) > 448) continue;
    const float mid = 0.5f * (v + n);
    EXPECT_EQ(bits(fused::e4m3_round(v)), bits(v)) << c;
    if (std::fabs(mid) <= 448) EXPECT_EQ(bits(fused::e4m3_round(mid)), bits(e4m3_round(mid))) << c;
  }
}

TEST(FusedRne, EqualsNearbyint) {
  for (float x : sweep()) EXPECT_EQ(bits(fused::rne(x)), bits(std::nearbyint(x))) << x;
  for (float x : {0.5f, 1.5f, 2.5f, -0.5f, -2.5f, 4194304.5f, 8388607.5f, 8388608.0f, -0.3f})
    EXPECT_EQ(bits(fused::rne(x)), bits(std::nearbyint(x))) << x;
}

}  // namespace
}  // namespace sr::codec
