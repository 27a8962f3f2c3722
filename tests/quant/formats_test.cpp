// Format families: worked values from the spec (signround-algorithm.md §1.1-§1.5) and the OCP
// MX spec, the fused kernels against the composed reference (forward bit for bit, gradients to
// fp32 rounding), decode(encode(w)) == qdq(w) bit for bit, and the gradient contracts against
// finite differences of the straight-through-linearized formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "tensor_asserts.h"
#include "common/error.h"
#include "common/half.h"
#include "quant/formats/fp8.h"
#include "quant/formats/fp_codecs.h"
#include "quant/formats/int_quant.h"
#include "quant/formats/mxfp.h"
#include "quant/formats/nvfp.h"

namespace sr {
namespace {
using test::same_bits;

at::Tensor row(const std::vector<float>& v) { return at::tensor(v).reshape({1, int64_t(v.size())}); }

::testing::AssertionResult close(const at::Tensor& a, const at::Tensor& b, double rtol, double atol) {
  if (!a.defined() && !b.defined()) return ::testing::AssertionSuccess();
  if (a.defined() != b.defined()) return ::testing::AssertionFailure() << "one gradient is undefined";
  auto d = (a - b).abs() - (b.abs() * rtol + atol);
  if (d.max().item<double>() <= 0) return ::testing::AssertionSuccess();
  auto i = d.reshape(-1).argmax().item<int64_t>();
  return ::testing::AssertionFailure() << "max violation at " << i << ": " << a.reshape(-1)[i].item<float>()
                                       << " vs " << b.reshape(-1)[i].item<float>();
}

float f16(float x) { return f16_to_f32(f32_to_f16(x)); }

// A weight with typical values, exact zeros, an all-zero row and an outlier.
at::Tensor test_weight(int64_t o, int64_t i, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto w = at::randn({o, i}, gen) * 0.05;
  w.index_put_({at::indexing::Slice(), 3}, 0.0f);
  if (o > 2) w[1].zero_();
  w[0][0] = 0.9f;
  return w;
}

// ----------------------------------------------------------------------------- INT

TEST(IntQuant, SymWorkedValues) {
  int_quant::Format f{4, true, 4, true};
  // negative extreme dominates: m = +1, s = 1/8, levels -8..7
  auto r = int_quant::qdq(row({-1.0f, 0.5f, 0.25f, 0.9f}), f);
  EXPECT_EQ(r.scale.item<float>(), 0.125f);
  EXPECT_TRUE(same_bits(r.w_hat, row({-1.0f, 0.5f, 0.25f, 0.875f})));
  EXPECT_EQ(r.zp.item<float>(), 8.0f);
  // positive extreme dominates: s = -1/8 (signed scale); 1 -> level -8
  r = int_quant::qdq(row({1.0f, -0.5f, 0.3f, 0.1f}), f);
  EXPECT_EQ(r.scale.item<float>(), -0.125f);
  EXPECT_TRUE(same_bits(r.w_hat, row({1.0f, -0.5f, 0.25f, 0.125f})));
  // |min| == max: c < a is false, so m = -c and the scale is negative
  EXPECT_EQ(int_quant::qdq(row({0.5f, -0.5f, 0, 0}), f).scale.item<float>(), -0.0625f);
  // the scale is rounded to fp16 inside the qdq
  r = int_quant::qdq(row({-1.0f / 3, 0.1f, 0, 0}), f);
  EXPECT_EQ(r.scale.item<float>(), f16((1.0f / 3) / 8));
  auto e = int_quant::encode(row({-1.0f, 0.5f, 0.25f, 0.9f}), f);
  EXPECT_TRUE(at::equal(e.codes, at::tensor({0, 12, 10, 15}, at::kByte).reshape({1, 4})));
  EXPECT_EQ(e.zeros.item<uint8_t>(), 8);
  EXPECT_EQ(e.scales.scalar_type(), at::kHalf);
}

TEST(IntQuant, AsymWorkedValuesWithTies) {
  int_quant::Format f{2, false, 4, true};
  // wmin -1, wmax 2, maxq 3: s = 1, zp = 1; 0.5 is a tie and rounds to even 0
  auto r = int_quant::qdq(row({-1.0f, 0.0f, 0.5f, 2.0f}), f);
  EXPECT_EQ(r.scale.item<float>(), 1.0f);
  EXPECT_EQ(r.zp.item<float>(), 1.0f);
  EXPECT_TRUE(same_bits(r.w_hat, row({-1.0f, 0.0f, 0.0f, 2.0f})));
  auto e = int_quant::encode(row({-1.0f, 0.0f, 0.5f, 2.0f}), f);
  EXPECT_TRUE(at::equal(e.codes, at::tensor({0, 1, 1, 3}, at::kByte).reshape({1, 4})));
  EXPECT_EQ(e.zeros.item<uint8_t>(), 1);
  // 1.5 is a tie and rounds to 2; all-positive group: wmin0 = 0, zp = 0
  r = int_quant::qdq(row({1.5f, 3.0f, 0.4f, 2.6f}), f);
  EXPECT_EQ(r.zp.item<float>(), 0.0f);
  EXPECT_TRUE(same_bits(r.w_hat, row({2.0f, 3.0f, 0.0f, 3.0f})));
}

TEST(IntQuant, AllZeroGroupGivesFloorScaleAndZeros) {
  for (bool sym : {true, false}) {
    int_quant::Format f{4, sym, 4, true};
    auto r = int_quant::qdq(at::zeros({2, 8}), f);
    EXPECT_TRUE(at::equal(r.w_hat, at::zeros({2, 8})));
    EXPECT_TRUE(at::all(r.scale == int_quant::scale_floor(f)).item<bool>());
    EXPECT_FALSE(at::isnan(r.scale).any().item<bool>());
  }
  EXPECT_EQ(int_quant::scale_floor({4, true, 4, true}), f16(1e-5f));
  EXPECT_EQ(int_quant::scale_floor({4, true, 4, false}), 1e-8f);
}

TEST(IntQuant, InitScaleModeUsesInitTimesBetaAndIgnoresAlpha) {
  int_quant::Format f{3, true, 4, true};
  auto w = row({0.3f, -0.2f, 0.05f, 0.9f});
  Tunables t;
  t.init_scale = at::tensor({-0.2f});
  t.beta = at::tensor({1.5f});
  t.alpha = at::tensor({0.1f});
  auto r = int_quant::qdq(w, f, t);
  const float s = f16(-0.2f * 1.5f);
  EXPECT_EQ(r.scale.item<float>(), s);
  std::vector<float> want;
  for (float x : {0.3f, -0.2f, 0.05f, 0.9f}) {
    float q = std::fmin(std::fmax(std::nearbyint(x / s), -4.0f), 3.0f);
    want.push_back(s * (q == 0 ? 0.0f : q));  // the straight-through rounding yields +0 levels
  }
  EXPECT_TRUE(same_bits(r.w_hat, row(want)));
}

TEST(IntQuant, PaddingWhenInNotMultipleOfGroup) {
  int_quant::Format f{4, false, 4, true};
  auto w = test_weight(3, 10, 1);  // 10 = 2·4 + 2: last group padded with two zeros
  auto r = int_quant::qdq(w, f);
  EXPECT_EQ(r.w_hat.sizes(), w.sizes());
  EXPECT_EQ(r.scale.size(0), 9);
  auto e = int_quant::encode(w, f);
  EXPECT_EQ(e.scales.sizes(), (at::IntArrayRef{3, 3}));
  EXPECT_TRUE(same_bits(int_quant::decode(e, f), r.w_hat));
  // the padded last group equals quantizing those two columns alone (zeros are in range anyway)
  auto tail = int_quant::qdq(w.narrow(1, 8, 2).contiguous(), {4, false, -1, true});
  EXPECT_TRUE(same_bits(r.w_hat.narrow(1, 8, 2), tail.w_hat));
}

// ----------------------------------------------------------------------------- MX

TEST(Mxfp, SharedExponentRuleIncludingZeroAndExtremes) {
  mxfp::Format e2{mxfp::Element::E2M1, mxfp::ScaleRule::Floor, 32};
  mxfp::Format e4{mxfp::Element::E4M3, mxfp::ScaleRule::Floor, 32};
  mxfp::Format rc{mxfp::Element::E2M1, mxfp::ScaleRule::Rceil, 32};
  // OCP MX §6.3: X = 2^(floor(log2 amax) - emax_elem)
  EXPECT_EQ(mxfp::shared_exponent(6.0f, e2), 0);
  EXPECT_EQ(mxfp::shared_exponent(7.9999995f, e2), 0);  // torch.log2 would give E = 1 here
  EXPECT_EQ(mxfp::shared_exponent(8.0f, e2), 1);
  EXPECT_EQ(mxfp::shared_exponent(1.0f, e4), -8);
  EXPECT_EQ(mxfp::shared_exponent(0.0f, e2), -1);  // amax == 0 -> log2 replaced by 1
  EXPECT_EQ(mxfp::shared_exponent(0.0f, e4), -7);
  EXPECT_EQ(mxfp::shared_exponent(1e-40f, e2), -127);            // clamped: E8M0 byte 0x00
  EXPECT_EQ(mxfp::shared_exponent(std::ldexp(1.0f, -124), e2), -126);
  EXPECT_EQ(mxfp::shared_exponent(3.4e38f, e2), 125);            // never the NaN byte 0xff
  EXPECT_EQ(mxfp::shared_exponent(6.0f, rc), 0);                 // RCEIL: ceil(log2(amax/6))
  EXPECT_EQ(mxfp::shared_exponent(6.000001f, rc), 1);
  EXPECT_EQ(mxfp::shared_exponent(3.0f, rc), -1);
  EXPECT_EQ(mxfp::shared_exponent(0.0f, rc), 1);
  // the E8M0 bytes written by encode
  auto w = at::zeros({1, 64});
  w[0][40] = 3.4e38f;
  auto enc = mxfp::encode(w, e2);
  EXPECT_EQ(enc.scales[0][0].item<uint8_t>(), 126);  // all-zero block: E = -1
  EXPECT_EQ(enc.scales[0][1].item<uint8_t>(), 252);  // E = 125
  EXPECT_FALSE(at::isnan(mxfp::qdq(w, e2).w_hat).any().item<bool>());
}

TEST(Mxfp, Mxfp4HandBlock) {
  // amax 3 -> E = floor(log2 3) - 2 = -1, X = 0.5: elements are 2w rounded to E2M1.
  std::vector<float> w(32, 0.0f);
  std::vector<float> vals = {3.0f, 2.6f, 1.25f, 0.3f, -0.1f, 0.0f, -1.9f, 0.74f};
  std::copy(vals.begin(), vals.end(), w.begin());
  mxfp::Format f{mxfp::Element::E2M1, mxfp::ScaleRule::Floor, 32};
  auto r = mxfp::qdq(row(w), f);
  EXPECT_EQ(r.scale.item<float>(), -1.0f);
  // 6 -> 6; 5.2 -> 6; 2.5 -> 2 (tie); 0.6 -> 0.5; -0.2 -> -0; 0 -> +0; -3.8 -> -4; 1.48 -> 1.5
  std::vector<float> want = {3.0f, 3.0f, 1.0f, 0.25f, -0.0f, 0.0f, -2.0f, 0.75f};
  EXPECT_TRUE(same_bits(r.w_hat.narrow(1, 0, 8), row(want)));
  auto e = mxfp::encode(row(w), f);
  EXPECT_TRUE(at::equal(e.codes.narrow(1, 0, 8), at::tensor({7, 7, 4, 1, 8, 0, 14, 3}, at::kByte).reshape({1, 8})));
  EXPECT_EQ(e.scales.item<uint8_t>(), 126);
}

TEST(Mxfp, FloorRuleClipsWhereRceilDoesNot) {
  std::vector<float> w(32, 0.1f);
  w[5] = 7.5f;  // floor: E = 0, 7.5 saturates to 6; RCEIL: E = ceil(log2 1.25) = 1, 3.75 -> 4
  auto fl = mxfp::qdq(row(w), {mxfp::Element::E2M1, mxfp::ScaleRule::Floor, 32}).w_hat;
  auto rc = mxfp::qdq(row(w), {mxfp::Element::E2M1, mxfp::ScaleRule::Rceil, 32}).w_hat;
  EXPECT_EQ(fl[0][5].item<float>(), 6.0f);
  EXPECT_EQ(rc[0][5].item<float>(), 8.0f);
}

TEST(Mxfp, Mxfp8Elements) {
  std::vector<float> w(32, 0.0f);
  w[0] = 1.0f, w[1] = 0.001f, w[2] = -0.5f, w[3] = 1.0f / 1024;
  auto r = mxfp::qdq(row(w), {mxfp::Element::E4M3, mxfp::ScaleRule::Floor, 32});
  EXPECT_EQ(r.scale.item<float>(), -8.0f);  // floor(log2 1) - 8
  EXPECT_EQ(r.w_hat[0][0].item<float>(), 1.0f);
  EXPECT_EQ(r.w_hat[0][1].item<float>(), 0.25f / 256);  // 0.256 -> 0.25 (step 2^-5)
  EXPECT_EQ(r.w_hat[0][2].item<float>(), -0.5f);
  EXPECT_EQ(r.w_hat[0][3].item<float>(), 1.0f / 1024);  // 0.25 exactly
}

// ----------------------------------------------------------------------------- NV

TEST(Nvfp, TwoLevelScalingHandBlock) {
  // amax(W) = 4 -> gs = 2688·recip(4) = 672 exactly.
  std::vector<float> w(32, 0.0f);
  std::vector<float> b0 = {4.0f, -3.0f, 2.5f, 1.0f, 0.3f}, b1 = {1.0f, 0.25f, -0.6f, 0.41f};
  std::copy(b0.begin(), b0.end(), w.begin());
  std::copy(b1.begin(), b1.end(), w.begin() + 16);
  nvfp::Format f;
  auto gs = nvfp::global_scale(row(w));
  EXPECT_EQ(gs.item<float>(), 672.0f);
  auto r = nvfp::qdq(row(w), f);
  // block 0: sb = e4m3(672·(4·(1/6))) = 448, k = 672/448 = 1.5: 6, -4.5->-4, 3.75->4, 1.5, 0.45->0.5
  // block 1: sb = e4m3(672·(1/6)) = 112, k = 6: 6, 1.5, -3.6->-4, 2.46->2
  EXPECT_EQ(r.scale[0].item<float>(), 448.0f);
  EXPECT_EQ(r.scale[1].item<float>(), 112.0f);
  auto e = nvfp::encode(row(w), f);
  EXPECT_TRUE(at::equal(e.codes.narrow(1, 0, 5), at::tensor({7, 14, 6, 3, 1}, at::kByte).reshape({1, 5})));
  EXPECT_TRUE(at::equal(e.codes.narrow(1, 16, 5), at::tensor({7, 3, 14, 4, 0}, at::kByte).reshape({1, 5})));
  EXPECT_EQ(e.scales[0][0].item<uint8_t>(), 0x7e);
  EXPECT_EQ(e.scales[0][1].item<uint8_t>(), 0x6e);
  EXPECT_EQ(e.global_scale.item<float>(), 672.0f);
  // ŵ = fp4·sb/gs up to the last bit (the qdq uses recip(recip(sb·recip(gs))))
  std::vector<float> fp4 = {6, -4, 4, 1.5f, 0.5f}, fp4b = {6, 1.5f, -4, 2};
  for (size_t j = 0; j < fp4.size(); ++j)
    EXPECT_NEAR(r.w_hat[0][j].item<float>(), fp4[j] * 448.0 / 672.0, 1e-6) << j;
  for (size_t j = 0; j < fp4b.size(); ++j)
    EXPECT_NEAR(r.w_hat[0][16 + j].item<float>(), fp4b[j] * 112.0 / 672.0, 1e-6) << j;
  EXPECT_TRUE(same_bits(nvfp::decode(e, f), r.w_hat));
}

TEST(Nvfp, FusedGlobalScaleIsTheMinimum) {
  auto a = at::tensor({100.0f}), b = at::tensor({50.0f}), c = at::tensor({75.0f});
  EXPECT_EQ(nvfp::fuse_global_scales({a, b, c}).item<float>(), 50.0f);
  auto w = test_weight(4, 32, 2);
  auto own = nvfp::qdq(w, {}, {}).w_hat;
  auto fused = nvfp::qdq(w, {}, {}, nvfp::global_scale(w) * 0.7).w_hat;
  EXPECT_FALSE(at::equal(own, fused));
  EXPECT_THROW(nvfp::qdq(w, nvfp::Format{32}), sr::Error);
}

TEST(Nvfp, AllZeroTensorHasNoNaN) {
  auto r = nvfp::qdq(at::zeros({2, 32}), {});
  EXPECT_TRUE(at::equal(r.w_hat, at::zeros({2, 32})));
  EXPECT_FALSE(at::isnan(r.scale).any().item<bool>());
}

// ----------------------------------------------------------------------------- FP8

TEST(Fp8, WorkedValues) {
  // amax 896 -> s = 2: 448, 0.5, -0.25, 1.0625 -> 1 (tie to even), 0.0 -> +0
  auto w = row({896.0f, 1.0f, -0.5f, 2.125f, 0.0f});
  auto r = fp8::qdq(w, {-1});
  EXPECT_EQ(r.scale.item<float>(), 2.0f);
  EXPECT_TRUE(same_bits(r.w_hat, row({896.0f, 1.0f, -0.5f, 2.0f, 0.0f})));
  auto e = fp8::encode(w, {-1});
  EXPECT_TRUE(at::equal(e.codes, at::tensor({0x7e, 0x30, 0xa8, 0x38, 0x00}, at::kByte).reshape({1, 5})));
  auto z = fp8::qdq(at::zeros({2, 4}), {0});
  EXPECT_EQ(z.scale.item<float>(), float(1.0 / (448.0 * 512.0)));
  EXPECT_TRUE(at::equal(z.w_hat, at::zeros({2, 4})));
}

// ----------------------------------------------------------------------------- literal auto-round

at::Tensor floor_ste_lit(const at::Tensor& x) { return (at::floor(x) - x).detach() + x; }
at::Tensor round_ste_lit(const at::Tensor& x) { return (at::round(x) - x).detach() + x; }

// mxfp.py quant_element for E2M1 ("even" rounding), transcribed literally (torch.log2 included).
at::Tensor quant_element_literal(at::Tensor t) {
  auto e = floor_ste_lit(at::log2(t.abs() + (t == 0).to(at::kFloat))).clamp_min(0);
  t = t / at::pow(2.0, e) * 2.0;
  auto a = t.abs();
  auto mask = (at::remainder(a - 0.5, 2.0) == 0).to(at::kFloat);
  t = at::sign(t) * (floor_ste_lit(a + 0.5) - mask);
  return (t / 2.0 * at::pow(2.0, e)).clamp(-6.0, 6.0);
}

// nvfp.py cast_to_fp4, transcribed literally.
at::Tensor cast_to_fp4_literal(at::Tensor x) {
  auto sign = at::sign(x);
  x = x.abs();
  auto s1 = round_ste_lit(2.0 * x) / 2.0, s2 = round_ste_lit(x), s3 = 2.0 * round_ste_lit(x / 2.0);
  auto m1 = (x < 2.0).to(at::kFloat), m2 = (x < 4.0).to(at::kFloat);
  x = s1 * m1 + s2 * (1 - m1) * m2 + s3 * (1 - m1) * (1 - m2);
  return x.clamp(-6, 6) * sign;
}

TEST(LiteralAutoRound, ElementQuantizersMatchValuesAndStraightThroughSlopes) {
  // inputs in [-6, 6] away from powers of two (where torch.log2 may round up), ties included
  std::vector<float> xs = {0.0f, 0.1f, 0.25f, 0.3f, 0.75f, 0.9f, 1.25f, 1.3f, 1.75f, 2.5f, 2.7f, 3.5f,
                           4.4f, 5.0f, 5.1f, 5.9f, 6.0f};
  std::vector<float> all;
  for (float x : xs) all.push_back(x), all.push_back(-x);
  auto x1 = at::tensor(all).set_requires_grad(true), x2 = at::tensor(all).set_requires_grad(true);
  auto mx = quant_element_literal(x1), nv = cast_to_fp4_literal(x2);
  mx.sum().backward();
  nv.sum().backward();
  for (size_t i = 0; i < all.size(); ++i) {
    const float x = all[i], t = x == 0 ? 0.0f : codec::e2m1_round(x);
    EXPECT_EQ(mx[i].item<float>(), t) << x;
    EXPECT_EQ(nv[i].item<float>(), t) << x;
    // MX slope: t/x where floor(log2|x|) >= 0 (private exponent passes gradient), 1 below, 0 at 0
    const float mx_slope = x == 0 ? 0.0f : (std::fabs(x) >= 1.0f ? t / x : 1.0f);
    EXPECT_NEAR(x1.grad()[i].item<float>(), mx_slope, 1e-6) << x;
    EXPECT_EQ(x2.grad()[i].item<float>(), x == 0 ? 0.0f : 1.0f) << x;  // NV slope sign(x)^2
  }
}

// ----------------------------------------------------------------------------- fused vs reference

// One family configuration: a name, how to run qdq (reference or fused), encode+decode, and
// which tunables it reads.
struct Case {
  std::string name;
  int64_t group_size;
  bool uses_alpha, uses_init;
  std::function<QdqResult(const at::Tensor&, const Tunables&, bool fused)> qdq;
  std::function<at::Tensor(const at::Tensor&, const Tunables&)> roundtrip;  // decode(encode(w))
};

std::vector<Case> cases() {
  std::vector<Case> out;
  for (int bits : {2, 3, 4, 8})
    for (bool sym : {true, false})
      for (int64_t g : {32, -1, 0, 24})
        for (bool init : {false, true}) {
          if (init && !sym) continue;
          int_quant::Format f{bits, sym, g, true};
          out.push_back({"int" + std::to_string(bits) + (sym ? "sym" : "asym") + "_g" + std::to_string(g) +
                             (init ? "_init" : ""),
                         g, !init, init,
                         [f](const at::Tensor& w, const Tunables& t, bool fu) {
                           return fu ? int_quant::qdq_fused(w, f, t) : int_quant::qdq_reference(w, f, t);
                         },
                         [f](const at::Tensor& w, const Tunables& t) {
                           return int_quant::decode(int_quant::encode(w, f, t), f);
                         }});
        }
  for (auto el : {mxfp::Element::E2M1, mxfp::Element::E4M3})
    for (auto rule : {mxfp::ScaleRule::Floor, mxfp::ScaleRule::Rceil})
      for (bool init : {false, true}) {
        mxfp::Format f{el, rule, 32};
        out.push_back({std::string("mx_") + (el == mxfp::Element::E2M1 ? "e2m1" : "e4m3") +
                           (rule == mxfp::ScaleRule::Rceil ? "_rceil" : "") + (init ? "_init" : ""),
                       32, false, init,
                       [f](const at::Tensor& w, const Tunables& t, bool fu) {
                         return fu ? mxfp::qdq_fused(w, f, t) : mxfp::qdq_reference(w, f, t);
                       },
                       [f](const at::Tensor& w, const Tunables& t) { return mxfp::decode(mxfp::encode(w, f, t), f); }});
      }
  for (bool init : {false, true})
    out.push_back({std::string("nvfp4") + (init ? "_init" : ""), 16, false, init,
                   [](const at::Tensor& w, const Tunables& t, bool fu) {
                     auto gs = nvfp::global_scale(w) * 0.75;  // a fused (smaller) global scale
                     return fu ? nvfp::qdq_fused(w, {}, t, gs) : nvfp::qdq_reference(w, {}, t, gs);
                   },
                   [](const at::Tensor& w, const Tunables& t) {
                     return nvfp::decode(nvfp::encode(w, {}, t, nvfp::global_scale(w) * 0.75), {});
                   }});
  for (int64_t g : {0, -1, 32})
    out.push_back({"fp8_g" + std::to_string(g), g, false, false,
                   [g](const at::Tensor& w, const Tunables& t, bool fu) {
                     return fu ? fp8::qdq_fused(w, {g}, t) : fp8::qdq_reference(w, {g}, t);
                   },
                   [g](const at::Tensor& w, const Tunables& t) { return fp8::decode(fp8::encode(w, {g}, t), {g}); }});
  return out;
}

// Random tunables: v in [-0.6, 0.6] (some elements pushed out of range by ±4), multipliers in
// [0.3, 1.8], init scales from the weight's own max (signed for int).
Tunables random_tunables(const Case& c, const at::Tensor& w, uint64_t seed, bool grad) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto g = group_layout(w.sizes(), c.group_size);
  Tunables t;
  t.v = at::rand({g.n_groups, g.length}, gen) * 1.2 - 0.6;
  t.v.index_put_({at::indexing::Slice(), 1}, 4.0f);
  t.v.index_put_({at::indexing::Slice(), 2}, -4.0f);
  t.beta = at::rand({g.n_groups}, gen) * 1.5 + 0.3;
  if (c.uses_alpha) t.alpha = at::rand({g.n_groups}, gen) * 1.5 + 0.3;
  if (c.uses_init) {
    auto amax = group_amax(to_groups(w, g, 0.0));
    t.init_scale = c.name.rfind("int", 0) == 0 ? -(amax / 4 + 1e-3) : at::rand({g.n_groups}, gen) + 0.5;
  }
  if (grad) {
    for (auto* x : {&t.v, &t.alpha, &t.beta})
      if (x->defined()) x->set_requires_grad(true);
  }
  return t;
}

TEST(Fused, ForwardBitIdenticalAndGradientsMatchReference) {
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.name);
    auto w = test_weight(6, 80, 7);
    for (int with_tunables = 0; with_tunables < 2; ++with_tunables) {
      Tunables tr = with_tunables ? random_tunables(c, w, 11, true) : Tunables{};
      Tunables tf = with_tunables ? random_tunables(c, w, 11, true) : Tunables{};
      auto ref = c.qdq(w, tr, false);
      auto fus = c.qdq(w, tf, true);
      ASSERT_TRUE(same_bits(fus.w_hat, ref.w_hat));
      ASSERT_TRUE(same_bits(fus.scale, ref.scale));
      if (!with_tunables) continue;
      auto coef = at::randn(w.sizes(), at::make_generator<at::CPUGeneratorImpl>(3));
      (ref.w_hat * coef).sum().backward();
      (fus.w_hat * coef).sum().backward();
      EXPECT_TRUE(close(tf.v.grad(), tr.v.grad(), 1e-5, 1e-7)) << "v";
      EXPECT_TRUE(close(tf.beta.grad(), tr.beta.grad(), 2e-3, 1e-5)) << "beta";
      if (c.uses_alpha) EXPECT_TRUE(close(tf.alpha.grad(), tr.alpha.grad(), 2e-3, 1e-5)) << "alpha";
    }
  }
}

// Activations: no tunables, the input itself requires grad (the scale path included).
TEST(Fused, InputGradientsMatchReference) {
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.name);
    auto base = test_weight(6, 80, 8) * 40;  // activation-like magnitudes
    base[2][7] = -base[2][6];                // a +x/-x tie in one group's max |x|
    auto coef = at::randn(base.sizes(), at::make_generator<at::CPUGeneratorImpl>(4));
    auto xr = base.clone().set_requires_grad(true), xf = base.clone().set_requires_grad(true);
    auto ref = c.qdq(xr, {}, false);
    auto fus = c.qdq(xf, {}, true);
    ASSERT_TRUE(same_bits(fus.w_hat, ref.w_hat));
    (ref.w_hat * coef).sum().backward();
    (fus.w_hat * coef).sum().backward();
    EXPECT_TRUE(close(xf.grad(), xr.grad(), 1e-4, 1e-5));
  }
}

TEST(Fused, StaticFp8ScaleAndInputGradients) {
  auto base = test_weight(4, 64, 12) * 40;
  auto coef = at::randn(base.sizes(), at::make_generator<at::CPUGeneratorImpl>(5));
  auto tmax = at::tensor({3.0f});
  at::Tensor gx[2], gb[2], y[2];
  for (int fu = 0; fu < 2; ++fu) {
    auto x = base.clone().set_requires_grad(true);
    auto scale = at::tensor({0.7f}).set_requires_grad(true);
    Tunables t;
    t.beta = scale.expand({4});
    auto r = fu ? fp8::qdq(x, {-1}, t, tmax) : fp8::qdq_reference(x, {-1}, t, tmax);
    (r.w_hat * coef).sum().backward();
    y[fu] = r.w_hat, gx[fu] = x.grad(), gb[fu] = scale.grad();
  }
  EXPECT_TRUE(same_bits(y[1], y[0]));
  EXPECT_TRUE(close(gx[1], gx[0], 1e-5, 1e-6));
  EXPECT_TRUE(close(gb[1], gb[0], 1e-4, 1e-6));
}

TEST(Fused, DecodeOfEncodeEqualsQdqBitForBit) {
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.name);
    auto w = test_weight(5, 72, 5);
    for (int with_tunables = 0; with_tunables < 2; ++with_tunables) {
      Tunables t = with_tunables ? random_tunables(c, w, 17, false) : Tunables{};
      EXPECT_TRUE(same_bits(c.roundtrip(w, t), c.qdq(w, t, true).w_hat));
    }
  }
}

// ----------------------------------------------------------------------------- gradient contracts

TEST(GradientContract, DqdqDvEqualsScaleInsideRangeAndZeroWhereClamped) {
  auto w = test_weight(4, 64, 9);
  // INT sym: ∂ŵ/∂v = s exactly where the level is inside [-nmax, nmax-1]
  {
    int_quant::Format f{4, true, 32, true};
    Tunables t;
    t.v = at::zeros({8, 32}).set_requires_grad(true);
    t.v.detach()[0][1] = 20.0f;  // pushed far out of range: clamped, gradient 0
    auto r = int_quant::qdq(w, f, t);
    r.w_hat.sum().backward();
    auto g = t.v.grad();
    EXPECT_EQ(g[0][1].item<float>(), 0.0f);
    for (int64_t i = 0; i < 8; ++i)
      for (int64_t j = 0; j < 32; ++j)
        if (!(i == 0 && j == 1)) ASSERT_EQ(g[i][j].item<float>(), r.scale[i].item<float>()) << i << "," << j;
  }
  // FP8: ∂ŵ/∂v = s inside ±448
  {
    Tunables t;
    t.v = at::zeros({4, 64}).set_requires_grad(true);
    t.v.detach()[2][5] = -1000.0f;
    auto r = fp8::qdq(w, {-1}, t);
    r.w_hat.sum().backward();
    EXPECT_EQ(t.v.grad()[2][5].item<float>(), 0.0f);
    EXPECT_EQ(t.v.grad()[2][6].item<float>(), r.scale[2].item<float>());
  }
  // NV: ∂ŵ/∂v = recip(k) inside ±6 and away from x == 0 (cast_to_fp4 slope sign(x)^2)
  {
    Tunables t;
    t.v = at::zeros({16, 16}).set_requires_grad(true);
    auto r = nvfp::qdq(w, {}, t);
    r.w_hat.sum().backward();
    EXPECT_EQ(t.v.grad()[0][3].item<float>(), 0.0f);  // column 3 of w is 0: x == 0
    EXPECT_GT(t.v.grad()[0][4].item<float>(), 0.0f);
  }
}

// Finite differences of the straight-through linearization: every rounding is replaced by
// x + (round(x0) - x0) and every clamp/branch keeps the decision it took at the base point x0
// (inside or cut, inclusive ends as in torch.clamp). That frozen function is smooth around x0
// and is exactly what autograd differentiates, so its finite differences must match.
class Frozen {
 public:
  double r(double x, const std::function<double(double)>& round) {
    if (recording_) {
      const double v = round(x);
      d_.push_back(v - x);
      return v;
    }
    return x + d_.at(i_++);
  }
  double clamp(double x, double lo, double hi) {
    int side;
    if (recording_) side = x < lo ? -1 : (x > hi ? 1 : 0), sides_.push_back(side);
    else side = sides_.at(k_++);
    return side < 0 ? lo : (side > 0 ? hi : x);
  }
  bool pick(bool cond) {
    if (recording_) return picks_.push_back(cond), cond;
    return picks_.at(b_++);
  }
  void replay() { recording_ = false, i_ = k_ = b_ = 0; }

 private:
  std::vector<double> d_;
  std::vector<int> sides_;
  std::vector<bool> picks_;
  size_t i_ = 0, k_ = 0, b_ = 0;
  bool recording_ = true;
};

double rne_d(double x) { return std::nearbyint(x); }
const double kInf = INFINITY;

// Σ c·ŵ for one INT group (asym or sym, optionally init mode), parameters p = {v..., alpha, beta}.
double int_loss(const std::vector<double>& w, const std::vector<double>& c, const std::vector<double>& p,
                int bits, bool sym, double init, Frozen& fz) {
  const size_t L = w.size();
  const double alpha = p[L], beta = p[L + 1];
  const double th = f16(1e-5f);
  double mn = 0, mx = 0;
  for (double x : w) mn = std::min(mn, x), mx = std::max(mx, x);
  auto to16 = [](double x) { return double(f16(float(x))); };
  double loss = 0;
  if (!sym) {
    const double maxq = (1 << bits) - 1, wmin = mn * alpha;
    const double s = fz.clamp(fz.r((mx * beta - wmin) / maxq, to16), th, kInf);
    const double z = fz.r(-wmin / s, rne_d);
    for (size_t j = 0; j < L; ++j) loss += c[j] * s * (fz.clamp(fz.r(w[j] / s + p[j], rne_d) + z, 0, maxq) - z);
    return loss;
  }
  const double nmax = 1 << (bits - 1);
  const double a = -mn * alpha, cc = mx * beta;
  double s = fz.r(init != 0 ? init * beta : (fz.pick(cc < a) ? a : -cc) / nmax, to16);
  s = s < 0 ? fz.clamp(s, -kInf, -th) : fz.clamp(s, th, kInf);
  for (size_t j = 0; j < L; ++j) loss += c[j] * s * fz.clamp(fz.r(w[j] / s + p[j], rne_d), -nmax, nmax - 1);
  return loss;
}

// Σ c·ŵ for one MX E2M1 block (floor rule), p = {v..., beta}.
double mx_loss(const std::vector<double>& w, const std::vector<double>& c, const std::vector<double>& p, Frozen& fz) {
  const size_t L = w.size();
  double amax = 0;
  for (double x : w) amax = std::max(amax, std::fabs(x));
  const double am = amax * p[L];
  const double e = fz.clamp(fz.r(std::log2(am), [](double x) { return std::floor(x); }) - 2, -127, 127);
  const double s = std::exp2(e);
  double loss = 0;
  for (size_t j = 0; j < L; ++j) {
    const double xc = fz.clamp(w[j] / s + p[j], -6, 6);
    const double ex = fz.clamp(fz.r(std::log2(std::fabs(xc)), [](double x) { return std::floor(x); }), 0, kInf);
    const double pe = std::exp2(ex), u = xc / pe * 2;
    const double ur = (u > 0 ? 1 : -1) * fz.r(std::fabs(u), rne_d);
    loss += c[j] * (ur / 2 * pe) * s;
  }
  return loss;
}

// Σ c·ŵ for one NVFP4 block with global scale gs, p = {v..., beta}.
double nv_loss(const std::vector<double>& w, const std::vector<double>& c, const std::vector<double>& p, double gs,
               Frozen& fz) {
  const size_t L = w.size();
  double amax = 0;
  for (double x : w) amax = std::max(amax, std::fabs(x));
  const double sb = fz.r(fz.clamp(gs * (amax * p[L] / 6), -448, 448), [](double x) { return codec::e4m3_round(float(x)); });
  const double k = 1.0 / (sb / gs);
  double loss = 0;
  for (size_t j = 0; j < L; ++j) {
    const double xc = fz.clamp(w[j] * k + p[j], -6, 6);
    const double f = (xc > 0 ? 1 : -1) * fz.r(std::fabs(xc), [](double x) { return codec::e2m1_round(float(x)); });
    loss += c[j] * f / k;
  }
  return loss;
}

// Central differences with steps h and h/2; parameters where the two disagree (a clamp or branch
// boundary nearby) are skipped, as test-backend-ops does.
void expect_fd_matches(const std::function<double(const std::vector<double>&)>& f, const std::vector<double>& p0,
                       const std::vector<float>& grad, const std::string& what, int min_checked) {
  int checked = 0;
  for (size_t i = 0; i < p0.size(); ++i) {
    auto at_ = [&](double h) {
      auto a = p0, b = p0;
      a[i] += h, b[i] -= h;
      return (f(a) - f(b)) / (2 * h);
    };
    const double d1 = at_(1e-4), d2 = at_(5e-5);
    if (std::fabs(d1 - d2) > 1e-3 * (1 + std::fabs(d1))) continue;
    ++checked;
    EXPECT_NEAR(grad[i], d1, 2e-3 * (1 + std::fabs(d1))) << what << " parameter " << i;
  }
  EXPECT_GE(checked, min_checked) << what;
}

std::vector<double> to_d(const at::Tensor& t) {
  auto c = t.to(at::kDouble).contiguous().reshape(-1);
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

std::vector<float> grads_of(const Tunables& t, bool alpha) {
  std::vector<float> g;
  auto gv = t.v.grad().contiguous().reshape(-1);
  g.assign(gv.data_ptr<float>(), gv.data_ptr<float>() + gv.numel());
  if (alpha) g.push_back(t.alpha.grad().item<float>());
  g.push_back(t.beta.grad().item<float>());
  return g;
}

TEST(GradientContract, FiniteDifferencesOfStraightThroughLinearization) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(21);
  auto w = at::randn({1, 32}, gen) * 0.1;
  auto c = at::randn({1, 32}, gen);
  auto wd = to_d(w), cd = to_d(c);
  auto vinit = at::rand({1, 32}, gen) * 0.6 - 0.3;
  for (bool fused_path : {false, true}) {
    SCOPED_TRACE(fused_path ? "fused" : "reference");
    for (int variant = 0; variant < 3; ++variant) {  // asym, sym, sym init-scale
      const bool sym = variant > 0;
      const double init = variant == 2 ? -0.021 : 0.0;
      int_quant::Format f{3, sym, 32, true};
      Tunables t;
      t.v = vinit.clone().set_requires_grad(true);
      t.beta = at::tensor({0.9f}).set_requires_grad(true);
      if (variant < 2) t.alpha = at::tensor({0.8f}).set_requires_grad(true);
      if (variant == 2) t.init_scale = at::tensor({float(init)});
      auto r = fused_path ? int_quant::qdq_fused(w, f, t) : int_quant::qdq_reference(w, f, t);
      (r.w_hat * c).sum().backward();
      auto p0 = to_d(vinit);
      p0.push_back(variant < 2 ? 0.8 : 1.0);
      p0.push_back(0.9);
      Frozen fz;
      int_loss(wd, cd, p0, 3, sym, init, fz);
      fz.replay();
      auto g = grads_of(t, variant < 2);
      if (variant == 2) g.insert(g.end() - 1, 0.0f);  // alpha unused: its FD is 0
      expect_fd_matches([&](const std::vector<double>& p) { Frozen z = fz; return int_loss(wd, cd, p, 3, sym, init, z); },
                        p0, g, "int variant " + std::to_string(variant), 30);
    }
    {
      Tunables t;
      t.v = vinit.clone().set_requires_grad(true);
      t.beta = at::tensor({0.9f}).set_requires_grad(true);
      mxfp::Format f{mxfp::Element::E2M1, mxfp::ScaleRule::Floor, 32};
      auto r = fused_path ? mxfp::qdq_fused(w, f, t) : mxfp::qdq_reference(w, f, t);
      (r.w_hat * c).sum().backward();
      auto p0 = to_d(vinit);
      p0.push_back(0.9);
      Frozen fz;
      mx_loss(wd, cd, p0, fz);
      fz.replay();
      expect_fd_matches([&](const std::vector<double>& p) { Frozen z = fz; return mx_loss(wd, cd, p, z); }, p0,
                        grads_of(t, false), "mx", 25);
    }
    {
      auto w16 = w.narrow(1, 0, 16).contiguous(), c16 = c.narrow(1, 0, 16).contiguous();
      const float gs = 2688.0f / 0.5f;
      Tunables t;
      t.v = vinit.narrow(1, 0, 16).clone().set_requires_grad(true);
      t.beta = at::tensor({0.9f}).set_requires_grad(true);
      auto gst = at::tensor({gs});
      auto r = fused_path ? nvfp::qdq_fused(w16, {}, t, gst) : nvfp::qdq_reference(w16, {}, t, gst);
      (r.w_hat * c16).sum().backward();
      auto p0 = to_d(t.v.detach());
      p0.push_back(0.9);
      auto wd16 = to_d(w16), cd16 = to_d(c16);
      Frozen fz;
      nv_loss(wd16, cd16, p0, gs, fz);
      fz.replay();
      expect_fd_matches([&](const std::vector<double>& p) { Frozen z = fz; return nv_loss(wd16, cd16, p, gs, z); },
                        p0, grads_of(t, false), "nv", 12);
    }
  }
}

TEST(GradientContract, ScaleGradientIsZeroWhenTheFloorIsActive) {
  // beta = 0 drives the INT scale to its magnitude floor: no gradient reaches alpha/beta
  auto w = test_weight(2, 32, 4);
  for (bool fused_path : {false, true}) {
    Tunables t;
    t.v = at::zeros({2, 32}).set_requires_grad(true);
    t.beta = at::zeros({2}).set_requires_grad(true);
    t.alpha = at::zeros({2}).set_requires_grad(true);
    int_quant::Format f{4, false, 32, true};
    auto r = fused_path ? int_quant::qdq_fused(w, f, t) : int_quant::qdq_reference(w, f, t);
    r.w_hat.sum().backward();
    EXPECT_TRUE(at::all(t.beta.grad() == 0).item<bool>());
  }
}

}  // namespace
}  // namespace sr
