// The ggml type registry: frozen IDs, block geometry (against ggml's type_traits,
// llama.cpp c392e50 ggml.c / ggml-common.h), name lookup, and table-driven properties
// that every registered codec must satisfy (adding a codec makes them run on it).
#include "quant/formats/ggml_types.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <iostream>
#include <random>

#include "common/error.h"
#include "common/half.h"
#include "quant/formats/ggml_frozen.h"
#include "quant/formats/ggml_iquants_grid.h"

namespace sr {
namespace {

TEST(GgmlTypes, IdsAreGgmlsFrozenValues) {
  // ggml/include/ggml.h enum ggml_type. These go into every GGUF file: never change.
  EXPECT_EQ(uint32_t(GgmlType::F32), 0u);
  EXPECT_EQ(uint32_t(GgmlType::F16), 1u);
  EXPECT_EQ(uint32_t(GgmlType::Q4_0), 2u);
  EXPECT_EQ(uint32_t(GgmlType::Q4_1), 3u);
  EXPECT_EQ(uint32_t(GgmlType::Q5_0), 6u);
  EXPECT_EQ(uint32_t(GgmlType::Q5_1), 7u);
  EXPECT_EQ(uint32_t(GgmlType::Q8_0), 8u);
  EXPECT_EQ(uint32_t(GgmlType::Q8_1), 9u);
  EXPECT_EQ(uint32_t(GgmlType::Q2_K), 10u);
  EXPECT_EQ(uint32_t(GgmlType::Q3_K), 11u);
  EXPECT_EQ(uint32_t(GgmlType::Q4_K), 12u);
  EXPECT_EQ(uint32_t(GgmlType::Q5_K), 13u);
  EXPECT_EQ(uint32_t(GgmlType::Q6_K), 14u);
  EXPECT_EQ(uint32_t(GgmlType::Q8_K), 15u);
  EXPECT_EQ(uint32_t(GgmlType::IQ2_XXS), 16u);
  EXPECT_EQ(uint32_t(GgmlType::IQ2_XS), 17u);
  EXPECT_EQ(uint32_t(GgmlType::IQ3_XXS), 18u);
  EXPECT_EQ(uint32_t(GgmlType::IQ1_S), 19u);
  EXPECT_EQ(uint32_t(GgmlType::IQ4_NL), 20u);
  EXPECT_EQ(uint32_t(GgmlType::IQ3_S), 21u);
  EXPECT_EQ(uint32_t(GgmlType::IQ2_S), 22u);
  EXPECT_EQ(uint32_t(GgmlType::IQ4_XS), 23u);
  EXPECT_EQ(uint32_t(GgmlType::I8), 24u);
  EXPECT_EQ(uint32_t(GgmlType::I16), 25u);
  EXPECT_EQ(uint32_t(GgmlType::I32), 26u);
  EXPECT_EQ(uint32_t(GgmlType::I64), 27u);
  EXPECT_EQ(uint32_t(GgmlType::F64), 28u);
  EXPECT_EQ(uint32_t(GgmlType::IQ1_M), 29u);
  EXPECT_EQ(uint32_t(GgmlType::BF16), 30u);
  EXPECT_EQ(uint32_t(GgmlType::TQ1_0), 34u);
  EXPECT_EQ(uint32_t(GgmlType::TQ2_0), 35u);
  EXPECT_EQ(kGgmlTypeIdEnd, 39u);
}

TEST(GgmlTypes, RetiredAndOutOfRangeIdsAreUnknown) {
  for (uint32_t id : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 39u, 1000u}) {
    EXPECT_FALSE(ggml_type_id_known(id)) << id;
    EXPECT_THROW(ggml_type_traits(GgmlType(id)), Error) << id;
    EXPECT_EQ(ggml_type_name(GgmlType(id)), "unknown(" + std::to_string(id) + ")");
  }
  int known = 0;
  for (uint32_t id = 0; id < kGgmlTypeIdEnd; ++id) known += ggml_type_id_known(id);
  EXPECT_EQ(known, 31);
}

TEST(GgmlTypes, BlockGeometryMatchesGgml) {
  struct Row {
    GgmlType t;
    const char* name;
    int64_t block;
    uint32_t bytes;
  };
  // ggml type_traits blck_size / type_size; the comments give the byte arithmetic.
  const Row rows[] = {
      {GgmlType::F32, "f32", 1, 4},          {GgmlType::F16, "f16", 1, 2},
      {GgmlType::Q4_0, "q4_0", 32, 18},      // 2 + 16
      {GgmlType::Q4_1, "q4_1", 32, 20},      // 2 + 2 + 16
      {GgmlType::Q5_0, "q5_0", 32, 22},      // 2 + 4 + 16
      {GgmlType::Q5_1, "q5_1", 32, 24},      // 2 + 2 + 4 + 16
      {GgmlType::Q8_0, "q8_0", 32, 34},      // 2 + 32
      {GgmlType::Q8_1, "q8_1", 32, 36},      // 2 + 2 + 32
      {GgmlType::Q2_K, "q2_K", 256, 84},     // 16 + 64 + 2 + 2
      {GgmlType::Q3_K, "q3_K", 256, 110},    // 32 + 64 + 12 + 2
      {GgmlType::Q4_K, "q4_K", 256, 144},    // 2 + 2 + 12 + 128
      {GgmlType::Q5_K, "q5_K", 256, 176},    // 2 + 2 + 12 + 32 + 128
      {GgmlType::Q6_K, "q6_K", 256, 210},    // 128 + 64 + 16 + 2
      {GgmlType::Q8_K, "q8_K", 256, 292},    // 4 + 256 + 32
      {GgmlType::IQ2_XXS, "iq2_xxs", 256, 66}, {GgmlType::IQ2_XS, "iq2_xs", 256, 74},
      {GgmlType::IQ3_XXS, "iq3_xxs", 256, 98}, {GgmlType::IQ1_S, "iq1_s", 256, 50},
      {GgmlType::IQ4_NL, "iq4_nl", 32, 18},    {GgmlType::IQ3_S, "iq3_s", 256, 110},
      {GgmlType::IQ2_S, "iq2_s", 256, 82},     {GgmlType::IQ4_XS, "iq4_xs", 256, 136},
      {GgmlType::I8, "i8", 1, 1},              {GgmlType::I16, "i16", 1, 2},
      {GgmlType::I32, "i32", 1, 4},            {GgmlType::I64, "i64", 1, 8},
      {GgmlType::F64, "f64", 1, 8},            {GgmlType::IQ1_M, "iq1_m", 256, 56},
      {GgmlType::BF16, "bf16", 1, 2},          {GgmlType::TQ1_0, "tq1_0", 256, 54},
      {GgmlType::TQ2_0, "tq2_0", 256, 66},
  };
  for (const Row& r : rows) {
    const GgmlTypeTraits& tr = ggml_type_traits(r.t);
    EXPECT_EQ(tr.type, r.t);
    EXPECT_STREQ(tr.name, r.name);
    EXPECT_EQ(tr.block_size, r.block) << r.name;
    EXPECT_EQ(tr.type_size, r.bytes) << r.name;
  }
}

TEST(GgmlTypes, SupportedSetAndUnsupportedError) {
  const std::vector<GgmlType> want = {GgmlType::F32,  GgmlType::F16,  GgmlType::Q4_0, GgmlType::Q4_1,
                                      GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K,
                                      GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
                                      GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ3_XXS, GgmlType::IQ1_S,
                                      GgmlType::IQ4_NL, GgmlType::IQ3_S, GgmlType::IQ2_S, GgmlType::IQ4_XS,
                                      GgmlType::IQ1_M, GgmlType::BF16};
  EXPECT_EQ(ggml_supported_types(), want);
  for (GgmlType t : want) {
    const GgmlTypeTraits& tr = ggml_codec(t);
    EXPECT_TRUE(tr.dequantize_row && tr.quantize_row_ref && tr.quantize_row_weighted) << tr.name;
  }
  try {
    ggml_codec(GgmlType::TQ1_0);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tq1_0"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("q4_K"), std::string::npos) << "lists the supported types: " << e.what();
  }
}

TEST(GgmlTypes, NameLookupIgnoresCase) {
  EXPECT_EQ(ggml_type_from_name("q4_k"), GgmlType::Q4_K);
  EXPECT_EQ(ggml_type_from_name("Q4_K"), GgmlType::Q4_K);
  EXPECT_EQ(ggml_type_from_name("BF16"), GgmlType::BF16);
  EXPECT_EQ(ggml_type_from_name("iq4_xs"), GgmlType::IQ4_XS);
  for (GgmlType t : ggml_supported_types()) EXPECT_EQ(ggml_type_from_name(ggml_type_name(t)), t);
  EXPECT_THROW(ggml_type_from_name("q4_k_m"), Error);  // a llama-quantize mix, not a ggml type
  EXPECT_THROW(ggml_type_from_name(""), Error);
}

TEST(GgmlTypes, RowBytes) {
  EXPECT_EQ(ggml_row_bytes(GgmlType::Q4_K, 4096), 16u * 144);
  EXPECT_EQ(ggml_row_bytes(GgmlType::Q8_0, 64), 68u);
  EXPECT_EQ(ggml_row_bytes(GgmlType::F16, 3), 6u);
  EXPECT_EQ(ggml_row_bytes(GgmlType::Q2_K, 0), 0u);
  EXPECT_THROW(ggml_row_bytes(GgmlType::Q4_K, 128), Error);
  EXPECT_THROW(ggml_row_bytes(GgmlType::Q4_0, 33), Error);
  EXPECT_THROW(ggml_row_bytes(GgmlType::F32, -1), Error);
}

// Every known type's row, whatever it implements (style.md #3, #5: a new row is checked here
// without any other change).
std::vector<GgmlType> known_types() {
  std::vector<GgmlType> out;
  for (uint32_t id = 0; id < kGgmlTypeIdEnd; ++id)
    if (ggml_type_id_known(id)) out.push_back(GgmlType(id));
  return out;
}

TEST(GgmlTypes, EveryRowIsConsistent) {
  for (GgmlType t : known_types()) {
    const GgmlTypeTraits& tr = ggml_type_traits(t);
    SCOPED_TRACE(tr.name);
    EXPECT_EQ(tr.type, t);
    EXPECT_EQ(ggml_type_from_name(tr.name), t);
    // Row bytes are n / block_size blocks of type_size bytes; a partial block is refused.
    for (int64_t blocks : {0, 1, 3, 16}) EXPECT_EQ(ggml_row_bytes(t, blocks * tr.block_size), uint64_t(blocks) * tr.type_size);
    if (tr.block_size > 1) {
      EXPECT_THROW(ggml_row_bytes(t, tr.block_size + 1), Error);
    }
    // Bits per weight are the bytes spread over the block: the code bits plus at most a
    // little over one bit of headers (q8_K 8 -> 9.125; q4_K 4 -> 4.5; f32 32 -> 32).
    EXPECT_DOUBLE_EQ(tr.bits_per_weight() * double(tr.block_size), 8.0 * tr.type_size);
    EXPECT_GE(tr.bits_per_weight(), double(tr.bits));
    EXPECT_LT(tr.bits_per_weight(), tr.bits + 1.25);
    // A codec is complete: all three row functions and the scale check.
    if (tr.supported()) {
      EXPECT_TRUE(tr.quantize_row_ref && tr.quantize_row_weighted && tr.block_finite);
    } else {
      EXPECT_FALSE(tr.quantize_row_ref || tr.quantize_row_weighted || tr.block_finite || tr.has_block_params());
    }
    if (tr.has_table()) {
      // Table hooks (the i-quants): a codec, whole sub-blocks, every hook but the optional
      // weights, never both kinds of hooks; the grid rows' sub-block and levels are the grid
      // codec's own (a hand-typed row cannot drift from ggml_iquants_grid.cpp).
      EXPECT_TRUE(tr.supported());
      EXPECT_FALSE(tr.has_block_params());
      EXPECT_EQ(tr.block_size % tr.table.group, 0);
      EXPECT_TRUE(tr.table.row_scales && tr.table.frozen_row && tr.table.unpack_values);
      EXPECT_LT(tr.table.code_min, tr.table.code_max);
      EXPECT_EQ(tr.table.row_weights != nullptr, iq_grid_type(t));
      if (iq_grid_type(t)) {
        EXPECT_EQ(tr.table.group, iq_grid_sub_block(t));
        EXPECT_EQ(tr.table.code_min, -tr.table.code_max);
      }
    }
    EXPECT_EQ(tr.has_table(), tr.type == GgmlType::IQ4_NL || tr.type == GgmlType::IQ4_XS || iq_grid_type(t));
    if (!tr.has_block_params()) continue;
    // Frozen-parameter hooks: whole sub-blocks, codes that fit the byte buffers of
    // ggml_frozen.cpp (blocks of at most 256 codes of at most 8 bits), all hooks set, and
    // the legacy ref rule present exactly for the 32-element legacy blocks.
    EXPECT_TRUE(tr.supported());
    EXPECT_EQ(tr.block_size % tr.params.group, 0);
    EXPECT_LE(tr.block_size, 256);
    EXPECT_GE(tr.bits, 2);
    EXPECT_LE(tr.bits, 8);
    EXPECT_TRUE(tr.params.unpack && tr.params.pack && tr.params.decode);
    EXPECT_EQ(tr.params.ref_params != nullptr, tr.params.ref_code != nullptr);
    EXPECT_EQ(tr.params.ref_code != nullptr, tr.block_size == 32);
    EXPECT_EQ(tr.params.sub_scale_bits > 0, tr.block_size > tr.params.group) << "k-quants have a super-block cost";
  }
}

// ---- properties of every codec ----------------------------------------------------------

std::vector<float> gaussian_row(int64_t n, uint32_t seed, float sigma = 0.02f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = dist(rng);
  return x;
}

std::vector<float> roundtrip(GgmlType t, const std::vector<float>& x, bool weighted) {
  const GgmlTypeTraits& tr = ggml_codec(t);
  const auto n = int64_t(x.size());
  std::vector<uint8_t> blocks(ggml_row_bytes(t, n));
  std::vector<float> w(x.size(), 1.0f);
  if (weighted || tr.requires_importance) {  // the types llama.cpp refuses without an imatrix
    tr.quantize_row_weighted(x.data(), blocks.data(), n, w.data());
  } else {
    tr.quantize_row_ref(x.data(), blocks.data(), n);
  }
  std::vector<float> y(x.size());
  tr.dequantize_row(blocks.data(), y.data(), n);
  return y;
}

class EveryCodec : public ::testing::TestWithParam<GgmlType> {};

TEST_P(EveryCodec, AllZeroRowDecodesToZerosWithZeroScales) {
  const GgmlType t = GetParam();
  const GgmlTypeTraits& tr = ggml_codec(t);
  const std::vector<float> x(512, 0.0f);
  const std::vector<float> w(512, 1.0f);
  for (bool weighted : {false, true}) {
    const std::vector<float> y = roundtrip(t, x, weighted);
    for (float v : y) ASSERT_EQ(v, 0.0f) << ggml_type_name(t) << (weighted ? " weighted" : " ref");
    std::vector<uint8_t> blocks(ggml_row_bytes(t, 512));
    if (weighted || tr.requires_importance) tr.quantize_row_weighted(x.data(), blocks.data(), 512, w.data());
    else tr.quantize_row_ref(x.data(), blocks.data(), 512);
    EXPECT_EQ(ggml_first_nonfinite_block(t, blocks.data(), blocks.size()), -1);
    if (!tr.has_block_params()) continue;
    // The stored scales and mins themselves are zero (not NaN, not a denormal guess).
    const GgmlRowParams p = ggml_row_params_from_blocks(t, blocks.data(), 512);
    for (size_t g = 0; g < p.scale.size(); ++g) {
      ASSERT_EQ(p.scale[g], 0.0f) << ggml_type_name(t) << " sub-block " << g;
      ASSERT_EQ(p.min[g], 0.0f) << ggml_type_name(t) << " sub-block " << g;
    }
  }
}

// Relative RMS error bound for N(0, 1) rows. Block types: 2^(1 - bits), one step of a
// b-bit grid spanning about +-1 (measured values, printed, are 0.5-0.7 of it); a broken
// layout or scale gives errors ~1. Float types by their significand (f32 exact).
double error_bound(GgmlType t) {
  const GgmlTypeTraits& tr = ggml_codec(t);
  if (tr.block_size > 1) return std::ldexp(1.0, 1 - tr.bits);
  switch (t) {
    case GgmlType::F32: return 0;
    case GgmlType::F16: return 4e-4;   // 11-bit significand
    case GgmlType::BF16: return 3e-3;  // 8-bit significand
    case GgmlType::IQ4_NL:
    case GgmlType::IQ4_XS: return std::ldexp(1.0, 1 - 4);  // 16 levels, as a 4-bit block type
    default: return -1;                // a new codec row: give it a bound here
  }
}

TEST_P(EveryCodec, ErrorIsWithinTheTypesResolution) {
  const GgmlType t = GetParam();
  const double bound = error_bound(t);
  ASSERT_GE(bound, 0.0) << ggml_type_name(t) << " has no error bound";
  const std::vector<float> x = gaussian_row(4096, 7, 1.0f);
  for (bool weighted : {false, true}) {
    const std::vector<float> y = roundtrip(t, x, weighted);
    double se = 0, ss = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      se += double(x[i] - y[i]) * (x[i] - y[i]);
      ss += double(x[i]) * x[i];
    }
    const double rel = std::sqrt(se / ss);
    std::cout << "  " << ggml_type_name(t) << (weighted ? " weighted" : " ref") << ": relative rms error "
              << rel << "\n";
    EXPECT_LE(rel, bound) << ggml_type_name(t) << (weighted ? " weighted" : " ref");
    if (t != GgmlType::F32) EXPECT_GT(rel, 0.0) << ggml_type_name(t) << ": a lossy type lost nothing?";
  }
}

TEST_P(EveryCodec, EncodersAreDeterministicAndRowLocal) {
  const GgmlType t = GetParam();
  const GgmlTypeTraits& tr = ggml_codec(t);
  const std::vector<float> x = gaussian_row(1024, 11);
  const std::vector<float> w = gaussian_row(1024, 12, 1.0f);
  std::vector<float> imp(w.size());
  for (size_t i = 0; i < w.size(); ++i) imp[i] = w[i] * w[i];
  std::vector<uint8_t> a(ggml_row_bytes(t, 1024)), b(a.size());
  tr.quantize_row_weighted(x.data(), a.data(), 1024, imp.data());
  tr.quantize_row_weighted(x.data(), b.data(), 1024, imp.data());
  EXPECT_EQ(a, b);
  if (tr.requires_importance) {
    EXPECT_THROW(tr.quantize_row_ref(x.data(), a.data(), 1024), Error) << "llama.cpp refuses it without an imatrix";
    return;
  }
  tr.quantize_row_ref(x.data(), a.data(), 1024);
  tr.quantize_row_ref(x.data(), b.data(), 1024);
  EXPECT_EQ(a, b);
  // The ref encoders work block by block: two halves encode like the whole.
  tr.quantize_row_ref(x.data(), a.data(), 1024);
  tr.quantize_row_ref(x.data(), b.data(), 512);
  tr.quantize_row_ref(x.data() + 512, b.data() + b.size() / 2, 512);
  EXPECT_EQ(a, b);
}

TEST_P(EveryCodec, ValuesOnTheGridSurviveARoundTrip) {
  // Decoded values are on the grid by construction: re-encoding them and decoding again
  // must reproduce them within the type's precision (exactly for the float types and
  // Q8_0, whose grid is fixed by the block's absmax).
  const GgmlType t = GetParam();
  const std::vector<float> x = gaussian_row(1024, 5, 1.0f);
  const std::vector<float> y = roundtrip(t, x, false);
  const std::vector<float> z = roundtrip(t, y, false);
  double se = 0, ss = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    se += double(y[i] - z[i]) * (y[i] - z[i]);
    ss += double(y[i]) * y[i];
  }
  if (t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16) {
    EXPECT_EQ(se, 0.0) << ggml_type_name(t);
  } else if (!ggml_codec(t).has_block_params() && ggml_codec(t).block_size == 256) {
    // The lattice i-quants re-fit every sub-block scale with importance sqrt(sigma^2 + x^2)
    // and store them with fudge factors (ggml's d * 1.125, * 0.9875, ...), so a decoded row
    // comes back within a fraction of a grid step, not exactly (measured 0.06-0.12).
    EXPECT_LE(std::sqrt(se / ss), 0.15) << ggml_type_name(t);
  } else {
    EXPECT_LE(std::sqrt(se / ss), 0.05) << ggml_type_name(t);
  }
}

INSTANTIATE_TEST_SUITE_P(Registry, EveryCodec, ::testing::ValuesIn(ggml_supported_types()),
                         [](const ::testing::TestParamInfo<GgmlType>& i) { return ggml_type_name(i.param); });

TEST(GgmlTypes, NonFiniteScalesAreFound) {
  std::vector<float> x = gaussian_row(512, 3);
  std::vector<uint8_t> blocks(ggml_row_bytes(GgmlType::Q4_K, 512));
  ggml_codec(GgmlType::Q4_K).quantize_row_ref(x.data(), blocks.data(), 512);
  EXPECT_EQ(ggml_first_nonfinite_block(GgmlType::Q4_K, blocks.data(), blocks.size()), -1);
  const uint16_t inf = 0x7c00, nan = 0x7e00;
  std::memcpy(blocks.data() + 144 + 2, &inf, 2);  // dmin of block 1
  EXPECT_EQ(ggml_first_nonfinite_block(GgmlType::Q4_K, blocks.data(), blocks.size()), 1);

  std::vector<uint8_t> q6(ggml_row_bytes(GgmlType::Q6_K, 256));
  ggml_codec(GgmlType::Q6_K).quantize_row_ref(x.data(), q6.data(), 256);
  std::memcpy(q6.data() + 208, &nan, 2);  // d
  EXPECT_EQ(ggml_first_nonfinite_block(GgmlType::Q6_K, q6.data(), q6.size()), 0);

  float f[3] = {1.0f, 2.0f, std::nanf("")};
  EXPECT_EQ(ggml_first_nonfinite_block(GgmlType::F32, f, sizeof(f)), 2);
  uint16_t bf[2] = {f32_to_bf16(1.0f), f32_to_bf16(INFINITY)};
  EXPECT_EQ(ggml_first_nonfinite_block(GgmlType::BF16, bf, sizeof(bf)), 1);
  EXPECT_THROW(ggml_first_nonfinite_block(GgmlType::Q4_0, f, 5), Error);
}

}  // namespace
}  // namespace sr
