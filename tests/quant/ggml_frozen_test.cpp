// The SignRound hooks of quant/formats/ggml_frozen.h on synthetic rows chosen to hit
// the corner cases of the encoders (all-zero and constant sub-blocks, sub-blocks
// whose double-quantized scale rounds to 0, outliers, fp16 underflow), for every
// block type:
//   - v = 0 reproduces llama.cpp's encoders byte for byte (ref: all types; weighted:
//     k-quants), the real-model counterpart is in ggml_llamacpp_test;
//   - decode(encode(x, v)) == qdq(x, v) bit for bit, for any v;
//   - v moves codes the way the contract says; re-encoding decoded blocks with their
//     own parameters is the identity.
#include "quant/formats/ggml_frozen.h"
#include "quant/formats/ggml_iquants_grid.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "common/error.h"
#include "common/half.h"

namespace sr {
namespace {

// The spec's list (ggml_frozen.h); the parameterized tests run on the registry's instead.
const std::vector<GgmlType> kBlockTypes = {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
                                           GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K,
                                           GgmlType::Q5_K, GgmlType::Q6_K};

bool is_kquant(GgmlType t) { return ggml_type_traits(t).block_size == 256; }

constexpr int64_t kN = 1024;  // four super-blocks / 32 legacy blocks

// Named synthetic rows of kN elements.
struct Row {
  std::string name;
  std::vector<float> x;
};

std::vector<Row> corner_rows() {
  std::mt19937 rng(1234);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<Row> rows;
  auto make = [&](const std::string& name, auto fn) {
    Row r{name, std::vector<float>(kN)};
    for (int64_t i = 0; i < kN; ++i) r.x[size_t(i)] = fn(i);
    rows.push_back(std::move(r));
  };
  make("gaussian", [&](int64_t) { return 0.02f * g(rng); });
  make("zeros", [](int64_t) { return 0.0f; });
  make("constant_pos", [](int64_t) { return 0.25f; });
  make("constant_neg", [](int64_t) { return -0.125f; });
  make("positive_only", [&](int64_t) { return std::fabs(g(rng)); });
  make("one_outlier_per_256", [&](int64_t i) { return i % 256 == 17 ? 40.0f : 0.01f * g(rng); });
  // Sub-blocks of 16 spanning 10 decades: most double-quantized scales round to 0, so the
  // codes of those sub-blocks come from the search, not from the stored scale.
  make("decades", [&](int64_t i) { return std::pow(10.0f, float((i / 16) % 10) - 7.0f) * g(rng); });
  make("zero_subblocks", [&](int64_t i) { return (i / 16) % 3 == 0 ? 0.0f : g(rng); });
  make("fp16_underflow", [&](int64_t) { return 1e-9f * g(rng); });
  make("integers", [&](int64_t i) { return float(int(i % 7) - 3); });
  return rows;
}

std::vector<float> importance(uint32_t seed) {
  std::mt19937 rng(seed);
  std::lognormal_distribution<float> d(0.0f, 1.5f);
  std::vector<float> w(kN);
  for (float& v : w) v = d(rng);
  return w;
}

std::vector<float> offsets(uint32_t seed, float amplitude) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-amplitude, amplitude);
  std::vector<float> v(kN);
  for (float& e : v) e = u(rng);
  return v;
}

std::vector<uint8_t> encode(const GgmlRowParams& p, const float* x, const float* v,
                            GgmlRounding r = GgmlRounding::kStoredGrid) {
  std::vector<uint8_t> out(p.blocks.size());
  ggml_encode_row_frozen(p, x, v, out.data(), r);
  return out;
}

std::vector<float> decode(GgmlType t, const std::vector<uint8_t>& blocks) {
  std::vector<float> y(kN);
  ggml_codec(t).dequantize_row(blocks.data(), y.data(), kN);
  return y;
}

class Frozen : public ::testing::TestWithParam<GgmlType> {};

TEST_P(Frozen, ParamsDescribeTheStoredBlocks) {
  const GgmlType t = GetParam();
  const GgmlRowParams p = ggml_search_row_ref(t, corner_rows()[0].x.data(), kN);
  EXPECT_EQ(p.type, t);
  EXPECT_EQ(p.n, kN);
  EXPECT_EQ(p.group, t == GgmlType::Q2_K || t == GgmlType::Q3_K || t == GgmlType::Q6_K ? 16 : 32);
  EXPECT_EQ(p.asymmetric, t == GgmlType::Q4_1 || t == GgmlType::Q5_1 || t == GgmlType::Q2_K ||
                              t == GgmlType::Q4_K || t == GgmlType::Q5_K);
  EXPECT_EQ(p.scale.size(), size_t(kN / p.group));
  EXPECT_EQ(p.blocks.size(), ggml_row_bytes(t, kN));
  // Decoding the stored blocks is scale*q - min with the unpacked signed codes.
  std::vector<int16_t> q(kN);
  ggml_unpack_row_codes(t, p.blocks.data(), kN, q.data());
  const std::vector<float> y = decode(t, p.blocks);
  for (int64_t e = 0; e < kN; ++e) {
    const size_t g = size_t(e / p.group);
    ASSERT_GE(q[e], p.code_min);
    ASSERT_LE(q[e], p.code_max);
    const float expect = p.asymmetric ? p.scale[g] * q[e] - p.min[g] : p.scale[g] * q[e];
    ASSERT_EQ(f32_bits(y[size_t(e)]), f32_bits(expect)) << ggml_type_name(t) << " element " << e;
  }
}

TEST_P(Frozen, ZeroOffsetsReproduceTheRefEncoder) {
  const GgmlType t = GetParam();
  const GgmlTypeTraits& tr = ggml_codec(t);
  for (const Row& r : corner_rows()) {
    std::vector<uint8_t> ref(ggml_row_bytes(t, kN));
    tr.quantize_row_ref(r.x.data(), ref.data(), kN);
    const GgmlRowParams p = ggml_search_row_ref(t, r.x.data(), kN);
    EXPECT_EQ(p.blocks, ref) << r.name;
    EXPECT_EQ(encode(p, r.x.data(), nullptr, GgmlRounding::kLlamaRef), ref) << ggml_type_name(t) << " " << r.name;
    const std::vector<float> zero(kN, 0.0f);
    EXPECT_EQ(encode(p, r.x.data(), zero.data(), GgmlRounding::kLlamaRef), ref) << r.name;
    if (is_kquant(t)) EXPECT_EQ(encode(p, r.x.data(), nullptr), ref) << "stored grid == ref rule, " << r.name;
  }
}

TEST_P(Frozen, ZeroOffsetsReproduceTheWeightedEncoderOfKQuants) {
  const GgmlType t = GetParam();
  const GgmlTypeTraits& tr = ggml_codec(t);
  const std::vector<float> w = importance(99);
  for (const Row& r : corner_rows()) {
    std::vector<uint8_t> weighted(ggml_row_bytes(t, kN));
    tr.quantize_row_weighted(r.x.data(), weighted.data(), kN, w.data());
    const GgmlRowParams p = ggml_search_row_weighted(t, r.x.data(), kN, w.data());
    EXPECT_EQ(p.blocks, weighted) << r.name;
    const std::vector<uint8_t> enc = encode(p, r.x.data(), nullptr);
    if (is_kquant(t)) {
      EXPECT_EQ(enc, weighted) << ggml_type_name(t) << " " << r.name;
      continue;
    }
    if (t == GgmlType::Q8_0) {
      EXPECT_EQ(encode(p, r.x.data(), nullptr, GgmlRounding::kLlamaRef), weighted) << r.name;
    }
    // Legacy imatrix encoders keep the codes of their scale search (Q8_0 has none and
    // rounds against the fp32 scale like its ref encoder), which need not be the
    // nearest points of the stored grid; re-rounding can only bring each element
    // closer (up to fp32 rounding of x/scale).
    const std::vector<float> a = decode(t, weighted), b = decode(t, enc);
    for (int64_t e = 0; e < kN; ++e) {
      const float ea = std::fabs(a[size_t(e)] - r.x[size_t(e)]), eb = std::fabs(b[size_t(e)] - r.x[size_t(e)]);
      ASSERT_LE(eb, ea * (1 + 1e-5f) + 1e-30f) << ggml_type_name(t) << " " << r.name << " element " << e;
    }
  }
}

TEST_P(Frozen, DecodeOfEncodeIsTheQdqFormulaBitForBit) {
  const GgmlType t = GetParam();
  const std::vector<float> w = importance(7);
  int seed = 0;
  for (const Row& r : corner_rows()) {
    for (bool weighted : {false, true}) {
      const GgmlRowParams p = weighted ? ggml_search_row_weighted(t, r.x.data(), kN, w.data())
                                       : ggml_search_row_ref(t, r.x.data(), kN);
      for (float amplitude : {0.0f, 0.5f, 3.0f}) {
        const std::vector<float> v = offsets(uint32_t(++seed), amplitude);
        std::vector<float> w_hat(kN);
        ggml_qdq_row_frozen(p, r.x.data(), v.data(), w_hat.data());
        const std::vector<uint8_t> blocks = encode(p, r.x.data(), v.data());
        const std::vector<float> y = decode(t, blocks);
        for (int64_t e = 0; e < kN; ++e) {
          ASSERT_EQ(f32_bits(y[size_t(e)]), f32_bits(w_hat[size_t(e)]))
              << ggml_type_name(t) << " " << r.name << " v amplitude " << amplitude << " element " << e;
        }
        // The headers are the frozen ones.
        const GgmlRowParams back = ggml_row_params_from_blocks(t, blocks.data(), kN);
        ASSERT_EQ(back.scale, p.scale) << r.name;
        ASSERT_EQ(back.min, p.min) << r.name;
      }
    }
  }
}

TEST_P(Frozen, OffsetsShiftCodesByWholeSteps) {
  const GgmlType t = GetParam();
  const Row r = corner_rows()[0];  // gaussian
  const GgmlRowParams p = ggml_search_row_ref(t, r.x.data(), kN);
  std::vector<int16_t> q0(kN), q_up(kN), q_down(kN);
  const std::vector<float> plus_one(kN, 1.0f), minus_0_4(kN, -0.4f);
  ggml_unpack_row_codes(t, encode(p, r.x.data(), nullptr).data(), kN, q0.data());
  ggml_unpack_row_codes(t, encode(p, r.x.data(), plus_one.data()).data(), kN, q_up.data());
  ggml_unpack_row_codes(t, encode(p, r.x.data(), minus_0_4.data()).data(), kN, q_down.data());
  int shifted = 0, candidates = 0;
  for (int64_t e = 0; e < kN; ++e) {
    if (!p.scale[size_t(e / p.group)]) continue;
    // v = +1: one step up unless at the top of the range; an element clamped at the
    // bottom may lie more than one step below it and stay there.
    if (q0[e] == p.code_min) {
      EXPECT_LE(q_up[e], p.code_min + 1) << ggml_type_name(t) << " element " << e;
    } else {
      EXPECT_EQ(q_up[e], std::min<int>(q0[e] + 1, p.code_max)) << ggml_type_name(t) << " element " << e;
    }
    // v = -0.4: never up, at most one step down.
    EXPECT_TRUE(q_down[e] == q0[e] || q_down[e] == q0[e] - 1) << e;
    ++candidates;
    shifted += q_down[e] != q0[e];
  }
  // About 40% of uniformly placed fractions fall below a 0.4 shift (clamping aside).
  EXPECT_GT(shifted, candidates / 5) << ggml_type_name(t);
  EXPECT_LT(shifted, candidates * 3 / 5) << ggml_type_name(t);
}

// The contract's rounding rule, computed here independently: q = clamp(rne(t + v)) with
// t = (x + min) / scale (asym) or x / scale (sym), in fp32, rne = std::nearbyint in the
// default round-to-nearest-even mode (spec §0 notation). Offsets are chosen so that
// t + v lands exactly on a half-integer for most elements: an encoder that rounds
// ties away from zero, or computes t with a reciprocal multiply (1 ulp off), fails.
TEST_P(Frozen, CodesFollowTheContractAtExactTies) {
  const GgmlType t = GetParam();
  for (const Row& r : corner_rows()) {
    const GgmlRowParams p = ggml_search_row_ref(t, r.x.data(), kN);
    std::vector<float> v(kN, 0.0f), target(kN, 0.0f);
    for (int64_t e = 0; e < kN; ++e) {
      const size_t g = size_t(e / p.group);
      if (!p.scale[g]) continue;
      const float xe = r.x[size_t(e)];
      target[size_t(e)] = p.asymmetric ? (xe + p.min[g]) / p.scale[g] : xe / p.scale[g];
      v[size_t(e)] = (std::floor(target[size_t(e)]) + 0.5f) - target[size_t(e)];
    }
    std::vector<int16_t> q(kN);
    ggml_unpack_row_codes(t, encode(p, r.x.data(), v.data()).data(), kN, q.data());
    int ties = 0;
    for (int64_t e = 0; e < kN; ++e) {
      if (!p.scale[size_t(e / p.group)]) continue;
      const float f = target[size_t(e)] + v[size_t(e)];
      const float rne = std::nearbyint(f);
      ties += f - std::floor(f) == 0.5f && std::fabs(f) < 64;
      const int expect = int(std::max<float>(float(p.code_min), std::min<float>(float(p.code_max), rne)));
      ASSERT_EQ(q[e], expect) << ggml_type_name(t) << " " << r.name << " element " << e << " t + v = " << f;
    }
    if (r.name == "gaussian") EXPECT_GT(ties, kN / 2) << "the offsets should create exact ties";
  }
}

// llama.cpp's legacy ref rule (GgmlRounding::kLlamaRef) at ties: the fp32 block scale,
// a reciprocal multiply, then half up (Q4/Q5: trunc(t + 8.5) etc.) or, for Q8_0,
// half away from zero.
class FrozenLegacy : public ::testing::TestWithParam<GgmlType> {};

TEST_P(FrozenLegacy, LlamaRefRuleRoundsTiesLikeLlamaCpp) {
  const GgmlType t = GetParam();
  const Row r = corner_rows()[0];
  const GgmlRowParams p = ggml_search_row_ref(t, r.x.data(), kN);
  const bool asym = p.asymmetric;
  std::vector<float> v(kN), s(kN);
  int half_up_differs_from_even = 0;
  for (int64_t e = 0; e < kN; ++e) {
    const size_t b = size_t(e / 32);
    const float id = p.ref_scale[b] ? 1.0f / p.ref_scale[b] : 0.0f;
    s[size_t(e)] = asym ? (r.x[size_t(e)] - p.ref_min[b]) * id : r.x[size_t(e)] * id;
    v[size_t(e)] = (std::floor(s[size_t(e)]) + 0.5f) - s[size_t(e)];
  }
  std::vector<int16_t> q(kN);
  ggml_unpack_row_codes(t, encode(p, r.x.data(), v.data(), GgmlRounding::kLlamaRef).data(), kN, q.data());
  for (int64_t e = 0; e < kN; ++e) {
    const float f = s[size_t(e)] + v[size_t(e)];
    // Q8_0: half away from zero; Q4/Q5: half up (trunc of a positive t + bias + 0.5).
    int expect = t == GgmlType::Q8_0 ? int(std::round(f)) : int(std::floor(f + 0.5f));
    expect = std::max(p.code_min, std::min(p.code_max, expect));
    ASSERT_EQ(q[e], expect) << ggml_type_name(t) << " element " << e << " t + v = " << f;
    half_up_differs_from_even += expect != std::max(p.code_min, std::min(p.code_max, int(std::nearbyint(f))));
  }
  EXPECT_GT(half_up_differs_from_even, kN / 8) << "the ties must tell the two rules apart";
}

TEST_P(Frozen, ReencodingDecodedBlocksWithTheirOwnParamsIsTheIdentity) {
  const GgmlType t = GetParam();
  for (const Row& r : corner_rows()) {
    std::vector<uint8_t> blocks(ggml_row_bytes(t, kN));
    ggml_codec(t).quantize_row_ref(r.x.data(), blocks.data(), kN);
    const std::vector<float> y = decode(t, blocks);
    const GgmlRowParams p = ggml_row_params_from_blocks(t, blocks.data(), kN);
    EXPECT_TRUE(p.ref_scale.empty());
    EXPECT_EQ(encode(p, y.data(), nullptr), blocks) << ggml_type_name(t) << " " << r.name;
  }
}

TEST_P(Frozen, RejectsNonFiniteInputsAndMissingRefScales) {
  const GgmlType t = GetParam();
  std::vector<float> x = corner_rows()[0].x;
  const GgmlRowParams p = ggml_search_row_ref(t, x.data(), kN);
  std::vector<uint8_t> out(p.blocks.size());
  std::vector<float> v(kN, 0.0f);
  v[300] = NAN;
  EXPECT_THROW(ggml_encode_row_frozen(p, x.data(), v.data(), out.data()), Error);
  x[5] = INFINITY;
  try {
    ggml_encode_row_frozen(p, x.data(), nullptr, out.data());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("element 5"), std::string::npos) << e.what();
  }
  const GgmlRowParams stored = ggml_row_params_from_blocks(t, p.blocks.data(), kN);
  if (!is_kquant(t)) {
    EXPECT_THROW(ggml_encode_row_frozen(stored, corner_rows()[0].x.data(), nullptr, out.data(),
                                        GgmlRounding::kLlamaRef),
                 Error);
  }
  GgmlRowParams broken = p;
  broken.scale.pop_back();
  EXPECT_THROW(ggml_qdq_row_frozen(broken, x.data(), nullptr, v.data()), Error);
}

// Every registered type with frozen-parameter hooks, and those with llama.cpp's legacy ref rule.
std::vector<GgmlType> legacy_types() {
  std::vector<GgmlType> out;
  for (GgmlType t : ggml_block_param_types())
    if (ggml_type_traits(t).params.ref_code) out.push_back(t);
  return out;
}

INSTANTIATE_TEST_SUITE_P(BlockTypes, Frozen, ::testing::ValuesIn(ggml_block_param_types()),
                         [](const ::testing::TestParamInfo<GgmlType>& i) { return ggml_type_name(i.param); });
INSTANTIATE_TEST_SUITE_P(LegacyTypes, FrozenLegacy, ::testing::ValuesIn(legacy_types()),
                         [](const ::testing::TestParamInfo<GgmlType>& i) { return ggml_type_name(i.param); });

TEST(FrozenTypes, OnlyBlockTypesHaveParams) {
  for (GgmlType t : ggml_supported_types()) {
    const bool block = std::find(kBlockTypes.begin(), kBlockTypes.end(), t) != kBlockTypes.end();
    // IQ4_NL / IQ4_XS are frozen through ggml_iquants_nl.h (tests/quant/ggml_iquants_nl_test.cpp),
    // the grid i-quants through ggml_iquants_grid.h (ggml_iquants_grid_tune_test.cpp).
    const bool iq = t == GgmlType::IQ4_NL || t == GgmlType::IQ4_XS || iq_grid_type(t);
    EXPECT_EQ(ggml_has_block_params(t), block || iq) << ggml_type_name(t);
  }
  const float x[32] = {};
  EXPECT_THROW(ggml_search_row_ref(GgmlType::F16, x, 32), Error);
  EXPECT_THROW(ggml_search_row_ref(GgmlType::Q4_K, x, 32), Error);  // not a whole super-block
  EXPECT_THROW(ggml_search_row_weighted(GgmlType::Q4_0, x, 32, nullptr), Error);
}

TEST(FrozenTypes, SignedCodesFollowTheLayouts) {
  // Q4_0 block with d = 1: element j (< 16) is the low nibble of qs[j], element j + 16 the
  // high nibble; the signed multiplier is code - 8.
  uint8_t q40[18] = {};
  const uint16_t one = f32_to_f16(1.0f);
  std::memcpy(q40, &one, 2);
  q40[2 + 0] = 0x1F;   // element 0: code 15 -> 7,  element 16: code 1 -> -7
  q40[2 + 15] = 0x80;  // element 15: code 0 -> -8, element 31: code 8 -> 0
  int16_t q[32];
  ggml_unpack_row_codes(GgmlType::Q4_0, q40, 32, q);
  EXPECT_EQ(q[0], 7);
  EXPECT_EQ(q[16], -7);
  EXPECT_EQ(q[15], -8);
  EXPECT_EQ(q[31], 0);
  EXPECT_EQ(q[1], -8);
  float y[32];
  ggml_codec(GgmlType::Q4_0).dequantize_row(q40, y, 32);
  EXPECT_EQ(y[0], 7.0f);
  EXPECT_EQ(y[16], -7.0f);

  // Q8_0 stores the signed code itself.
  uint8_t q80[34] = {};
  std::memcpy(q80, &one, 2);
  q80[2 + 3] = uint8_t(int8_t(-128));
  q80[2 + 4] = 127;
  ggml_unpack_row_codes(GgmlType::Q8_0, q80, 32, q);
  EXPECT_EQ(q[3], -128);
  EXPECT_EQ(q[4], 127);
  EXPECT_EQ(q[5], 0);
}

}  // namespace
}  // namespace sr
