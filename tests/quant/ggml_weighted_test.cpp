// The importance-weighted (imatrix) encoders, quantize_row_weighted. There are no
// llama.cpp files quantized with an imatrix to compare bytes against (the reference
// imatrix was not kept), so these are property tests:
//   - importance only matters relatively: multiplying it by a power of two changes
//     no byte (every float operation scales exactly);
//   - scaling a row by a power of two scales its decoded values exactly (ref and
//     weighted), i.e. no hidden absolute thresholds in the normal range;
//   - on the real model's weights, with uniform importance the weighted encoder is
//     not less accurate than the ref one (measured 0.79-0.98x the squared error), and
//     with a skewed (log-normal) importance its importance-weighted error is lower
//     than the ref encoder's, which ignores importance (measured 0.28-0.52x).
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <map>
#include <random>

#include "io/gguf_reader.h"
#include "quant/formats/ggml_types.h"
#include "testutil.h"

namespace sr {
namespace {

const std::vector<GgmlType> kQuantTypes = {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
                                           GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K,
                                           GgmlType::Q5_K, GgmlType::Q6_K};

std::vector<float> heavy_tailed_row(int64_t n, uint32_t seed, float sigma = 0.02f) {
  std::mt19937 rng(seed);
  std::student_t_distribution<float> t(3.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = sigma * t(rng);
  return x;
}

std::vector<float> skewed_importance(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::lognormal_distribution<float> d(0.0f, 2.0f);
  std::vector<float> w(static_cast<size_t>(n));
  for (float& v : w) v = d(rng);
  return w;
}

std::vector<uint8_t> encode(GgmlType t, const std::vector<float>& x, const float* w) {
  const auto n = int64_t(x.size());
  std::vector<uint8_t> out(ggml_row_bytes(t, n));
  if (w) {
    ggml_codec(t).quantize_row_weighted(x.data(), out.data(), n, w);
  } else {
    ggml_codec(t).quantize_row_ref(x.data(), out.data(), n);
  }
  return out;
}

std::vector<float> decode(GgmlType t, const std::vector<uint8_t>& b, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n));
  ggml_codec(t).dequantize_row(b.data(), y.data(), n);
  return y;
}

class Weighted : public ::testing::TestWithParam<GgmlType> {};

TEST_P(Weighted, OnlyRelativeImportanceMatters) {
  const GgmlType t = GetParam();
  const std::vector<float> x = heavy_tailed_row(2048, 1);
  std::vector<float> w = skewed_importance(2048, 2);
  const std::vector<uint8_t> a = encode(t, x, w.data());
  for (float& v : w) v *= 1024.0f;
  EXPECT_EQ(encode(t, x, w.data()), a) << ggml_type_name(t);
  for (float& v : w) v *= 1.0f / 65536.0f;
  EXPECT_EQ(encode(t, x, w.data()), a) << ggml_type_name(t);
}

TEST_P(Weighted, ScalingARowByAPowerOfTwoScalesItsDecodeExactly) {
  const GgmlType t = GetParam();
  const int64_t n = 2048;
  // Unit-scale weights keep every fp16 factor a normal number. (For LLM-sized weights,
  // ~0.02, Q6_K's d is an fp16 subnormal, where a power-of-two scaling is not exact.)
  const std::vector<float> x = heavy_tailed_row(n, 3, 1.0f);
  const std::vector<float> w = skewed_importance(n, 4);
  std::vector<float> x4(x);
  for (float& v : x4) v *= 4.0f;
  for (const float* weights : {static_cast<const float*>(nullptr), w.data()}) {
    const std::vector<float> y = decode(t, encode(t, x, weights), n);
    const std::vector<float> y4 = decode(t, encode(t, x4, weights), n);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(y4[size_t(i)], 4.0f * y[size_t(i)]) << ggml_type_name(t) << (weights ? " weighted" : " ref")
                                                      << " element " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(BlockTypes, Weighted, ::testing::ValuesIn(kQuantTypes),
                         [](const ::testing::TestParamInfo<GgmlType>& i) { return ggml_type_name(i.param); });

// Importance-weighted squared error sum_rows sum_i imp_i (x_i - y_i)^2 over all 2-D
// tensors of the real model whose rows fit the type.
struct Errors {
  double ref = 0;
  double weighted = 0;
};

Errors weighted_errors(const GgufReader& f32, GgmlType t, bool uniform) {
  Errors e;
  const int64_t block = ggml_type_traits(t).block_size;
  for (const GgufTensorInfo& info : f32.tensors()) {
    if (info.shape.size() != 2 || info.row_length() % block) continue;
    const std::vector<float> all = f32.decode_f32(info);
    const int64_t n = info.row_length();
    const std::vector<float> imp = uniform ? std::vector<float>(size_t(n), 1.0f) : skewed_importance(n, 77);
    for (int64_t r = 0; r < info.n_rows(); r += 4) {  // every 4th row keeps the test quick
      const std::vector<float> x(all.begin() + r * n, all.begin() + (r + 1) * n);
      const std::vector<float> a = decode(t, encode(t, x, nullptr), n);
      const std::vector<float> b = decode(t, encode(t, x, imp.data()), n);
      for (int64_t i = 0; i < n; ++i) {
        e.ref += imp[size_t(i)] * double(x[size_t(i)] - a[size_t(i)]) * (x[size_t(i)] - a[size_t(i)]);
        e.weighted += imp[size_t(i)] * double(x[size_t(i)] - b[size_t(i)]) * (x[size_t(i)] - b[size_t(i)]);
      }
    }
  }
  return e;
}

const std::string kF32 = "reference/llamacpp/tinystories-llama-4m/tinystories-llama-4m-f32.gguf";

TEST(WeightedOnRealWeights, UniformImportanceIsAboutAsGoodAsRef) {
  SR_REQUIRE_SHARED(kF32);
  GgufReader f32(test::shared(kF32));
  for (GgmlType t : kQuantTypes) {
    const Errors e = weighted_errors(f32, t, true);
    std::cout << "  " << ggml_type_name(t) << " uniform importance: weighted/ref squared error "
              << e.weighted / e.ref << "\n";
    EXPECT_LE(e.weighted, e.ref) << ggml_type_name(t);
    EXPECT_GT(e.weighted, 0.5 * e.ref) << ggml_type_name(t);
  }
}

TEST(WeightedOnRealWeights, SkewedImportanceLowersTheImportanceWeightedError) {
  SR_REQUIRE_SHARED(kF32);
  GgufReader f32(test::shared(kF32));
  for (GgmlType t : kQuantTypes) {
    const Errors e = weighted_errors(f32, t, false);
    std::cout << "  " << ggml_type_name(t) << " skewed importance: weighted/ref weighted error "
              << e.weighted / e.ref << "\n";
    if (t == GgmlType::Q8_0) {
      EXPECT_EQ(e.weighted, e.ref) << "llama.cpp ignores importance for q8_0";
    } else {
      EXPECT_LT(e.weighted, 0.75 * e.ref) << ggml_type_name(t);
    }
  }
}

}  // namespace
}  // namespace sr
