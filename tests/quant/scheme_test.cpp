// QuantScheme: the presets of spec §0.6 (auto_round/schemes.py), parsing, JSON round trip,
// the §0.1 shape check and the §4.3 bit-cost table.
#include "quant/formats/scheme.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "quant/data_types.h"
#include "quant/qdq.h"

namespace sr {
namespace {

TEST(DataTypeIds, AreFrozen) {
  EXPECT_EQ(int(DataType::Int), 0);
  EXPECT_EQ(int(DataType::MxFp), 1);
  EXPECT_EQ(int(DataType::MxFpRceil), 2);
  EXPECT_EQ(int(DataType::NvFp), 3);
  EXPECT_EQ(int(DataType::Fp8), 4);
  EXPECT_EQ(int(DataType::Float16), 5);
  EXPECT_EQ(int(DataType::BFloat16), 6);
  EXPECT_EQ(int(DataType::Gguf), 7);
  EXPECT_EQ(int(mxfp::Element::E2M1), 0);
  EXPECT_EQ(int(mxfp::Element::E4M3), 1);
  EXPECT_EQ(int(mxfp::ScaleRule::Floor), 0);
  EXPECT_EQ(int(mxfp::ScaleRule::Rceil), 1);
  EXPECT_EQ(int(TuneMode::V1), 0);
  EXPECT_EQ(int(TuneMode::V2), 1);
}

// Every row of the data type registries (style.md #5: a new row is checked without other changes).
TEST(DataTypeRegistry, EveryRowIsConsistent) {
  const auto& rows = data_type_registry();
  const auto& qdq_rows = data_type_qdq_registry();
  ASSERT_EQ(qdq_rows.size(), rows.size()) << "one qdq row per data type";
  for (size_t i = 0; i < rows.size(); ++i) {
    const DataTypeTraits& r = rows[i];
    const DataTypeQdq& q = qdq_rows[i];
    SCOPED_TRACE(r.name);
    EXPECT_EQ(size_t(r.type), i) << "rows in DataType order";
    EXPECT_EQ(q.type, r.type) << "qdq rows in DataType order";
    EXPECT_EQ(&data_type_traits(r.type), &r);
    EXPECT_EQ(&data_type_qdq(r.type), &q);
    EXPECT_STREQ(to_string(r.type), r.name);
    ASSERT_TRUE(q.qdq) << "every type has a weight qdq (identity for the 16-bit floats)";
    // Quantized types encode and decode; the others refuse to.
    EXPECT_EQ(q.encode != nullptr, r.quantized);
    EXPECT_EQ(q.decode != nullptr, r.quantized);
    // A side-validity rule exactly where the type can be a quantized side, and then an
    // activation qdq too; GGUF types are whole weight schemes (neither).
    EXPECT_EQ(r.check_side != nullptr, q.qdq_act != nullptr);
    if (!r.quantized) {
      EXPECT_EQ(r.check_side, nullptr);
    }
    if (q.search_init_scale || q.global_scale || r.block_scaled) {
      EXPECT_TRUE(r.check_side);
    }
    if (r.type == DataType::Gguf) {
      EXPECT_THROW(parse_data_type(r.name, 4), Error);  // named as a scheme, "gguf:q4_k"
      continue;
    }
    // Names and aliases parse back to the row, whatever their case.
    EXPECT_EQ(parse_data_type(r.name, 4), r.type);
    for (const char* alias : r.aliases) EXPECT_EQ(parse_data_type(alias, 4), r.type) << alias;
    std::string upper = r.name;
    for (char& c : upper) c = char(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(parse_data_type(upper, 4), r.type);
  }
  EXPECT_EQ(rows.size(), size_t(DataType::Gguf) + 1);
  EXPECT_THROW(data_type_traits(DataType(99)), Error);
  EXPECT_THROW(data_type_qdq(DataType(99)), Error);
}

struct PresetRow {
  const char* name;
  int bits;
  int64_t group;
  DataType dt;
  int act_bits;
  int64_t act_group;
  DataType act_dt;
  bool act_dynamic;
};

TEST(Presets, MatchTheSpecTable) {
  using D = DataType;
  const PresetRow rows[] = {
      {"W2A16", 2, 128, D::Int, 16, 128, D::BFloat16, true},
      {"W2A16G64", 2, 64, D::Int, 16, 64, D::BFloat16, true},
      {"W2A16G32", 2, 32, D::Int, 16, 32, D::BFloat16, true},
      {"W3A16", 3, 128, D::Int, 16, 128, D::BFloat16, true},
      {"W4A16", 4, 128, D::Int, 16, 128, D::BFloat16, true},
      {"W5A16", 5, 128, D::Int, 16, 128, D::BFloat16, true},
      {"W6A16", 6, 128, D::Int, 16, 128, D::BFloat16, true},
      {"W8A16", 8, 128, D::Int, 16, 128, D::BFloat16, true},
      {"MXFP4", 4, 32, D::MxFp, 4, 32, D::MxFp, true},
      {"MXFP8", 8, 32, D::MxFp, 8, 32, D::MxFp, true},
      {"MXFP4_RCEIL", 4, 32, D::MxFp, 4, 32, D::MxFpRceil, true},
      {"MXFP8_RCEIL", 8, 32, D::MxFp, 8, 32, D::MxFpRceil, true},
      {"NVFP4", 4, 16, D::NvFp, 4, 16, D::NvFp, false},
      {"FPW8A16", 8, 0, D::Fp8, 16, 0, D::BFloat16, true},
      {"FP8_STATIC", 8, -1, D::Fp8, 8, 0, D::Fp8, false},
      {"INT8", 8, -1, D::Int, 8, -1, D::Int, true},
      {"INT4", 4, -1, D::Int, 4, -1, D::Int, true},
      {"BF16", 16, 128, D::BFloat16, 16, 128, D::BFloat16, true},
  };
  ASSERT_EQ(preset_schemes().size(), std::size(rows));
  for (size_t i = 0; i < std::size(rows); ++i) {
    const auto& r = rows[i];
    const auto& [name, s] = preset_schemes()[i];
    SCOPED_TRACE(r.name);
    EXPECT_EQ(name, r.name);
    EXPECT_EQ(s.bits, r.bits);
    EXPECT_EQ(s.group_size, r.group);
    EXPECT_TRUE(s.sym);
    EXPECT_EQ(s.data_type, r.dt);
    EXPECT_EQ(s.act_bits, r.act_bits);
    EXPECT_EQ(s.act_group_size, r.act_group);
    EXPECT_EQ(s.act_data_type, r.act_dt);
    EXPECT_EQ(s.act_dynamic, r.act_dynamic);
    EXPECT_EQ(s.name(), r.name);
    EXPECT_NO_THROW(s.validate());
  }
}

TEST(Presets, LookupIsCaseInsensitiveWithAliases) {
  EXPECT_EQ(preset_scheme("w4a16"), preset_scheme("W4A16"));
  EXPECT_EQ(preset_scheme(" mxfp4_rceil "), preset_scheme("MXFP4_RCEIL"));
  EXPECT_EQ(preset_scheme("W8A8").name(), "INT8");
  EXPECT_EQ(preset_scheme("int8_w8a8").name(), "INT8");
  EXPECT_EQ(preset_scheme("W4A4").name(), "INT4");
  try {
    preset_scheme("W9A16");
    FAIL() << "no throw";
  } catch (const sr::Error& e) {
    EXPECT_NE(std::string(e.what()).find("W9A16"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("MXFP4"), std::string::npos);  // lists the presets
  }
}

TEST(SchemeJson, RoundTripsEveryPreset) {
  for (const auto& [name, s] : preset_schemes()) {
    SCOPED_TRACE(name);
    const auto j = s.to_json();
    const auto back = QuantScheme::from_json(j);
    EXPECT_EQ(back.to_json(), j);
    EXPECT_EQ(QuantScheme::from_json(nlohmann::json::parse(j.dump())).to_json(), j);
    EXPECT_EQ(QuantScheme::from_json(nlohmann::json(name)).to_json(), j);
  }
  const auto w4 = preset_scheme("W4A16").to_json();
  EXPECT_EQ(w4["data_type"], "int");
  EXPECT_EQ(w4["group_size"], 128);
  EXPECT_EQ(preset_scheme("NVFP4").to_json()["act_dynamic"], false);
}

TEST(SchemeJson, OverridesAndErrors) {
  auto s = QuantScheme::from_json(nlohmann::json{{"scheme", "W2A16"}, {"group_size", 64}});
  EXPECT_EQ(s.name(), "W2A16G64");
  s = QuantScheme::from_json(nlohmann::json{{"bits", 8}, {"data_type", "fp"}, {"group_size", 0}});
  EXPECT_EQ(s.name(), "FPW8A16");
  s = QuantScheme::from_json(nlohmann::json{{"bits", 4}, {"group_size", 32}, {"data_type", "mx_fp4"},
                                            {"act_bits", 4}, {"act_group_size", 32}});
  EXPECT_EQ(s.name(), "MXFP4");  // act_data_type follows data_type when act_bits < 16
  EXPECT_THROW(QuantScheme::from_json(nlohmann::json{{"bitz", 4}}), sr::Error);
  EXPECT_THROW(QuantScheme::from_json(nlohmann::json{{"bits", "four"}}), sr::Error);
  EXPECT_THROW(QuantScheme::from_json(nlohmann::json{{"bits", 9}}), sr::Error);
  EXPECT_THROW(QuantScheme::from_json(nlohmann::json{{"data_type", "nv_fp"}, {"group_size", 32}}), sr::Error);
  EXPECT_THROW(QuantScheme::from_json(nlohmann::json{{"data_type", "mx_fp"}, {"bits", 3}}), sr::Error);
  EXPECT_THROW(QuantScheme::from_json(nlohmann::json{{"data_type", "int8x"}}), sr::Error);
  EXPECT_THROW(QuantScheme::from_json(nlohmann::json(3)), sr::Error);
}

TEST(ParseScheme, PresetFieldsAndJsonText) {
  EXPECT_EQ(parse_scheme("NVFP4").name(), "NVFP4");
  auto s = parse_scheme("bits=3, sym=false, group_size=64");
  EXPECT_EQ(s.bits, 3);
  EXPECT_FALSE(s.sym);
  EXPECT_EQ(s.group_size, 64);
  EXPECT_EQ(s.data_type, DataType::Int);
  EXPECT_EQ(s.name(), "int3 asym g64 / a16");
  EXPECT_EQ(parse_scheme("scheme=W2A16,group_size=32").name(), "W2A16G32");
  EXPECT_EQ(parse_scheme(R"({"scheme": "INT8", "bits": 4})").name(), "int4 sym g-1 / a:int8 g-1 dynamic");
  EXPECT_THROW(parse_scheme(""), sr::Error);
  EXPECT_THROW(parse_scheme("{not json"), sr::Error);
  EXPECT_THROW(parse_scheme("bits"), sr::Error);  // neither a preset nor key=value
  EXPECT_THROW(parse_scheme("bits=3;group_size=32"), sr::Error);  // not the number 3: a wrong separator
  EXPECT_THROW(parse_scheme("bits=-"), sr::Error);
  EXPECT_THROW(parse_scheme("bits=4,oops"), sr::Error);
}

TEST(Fits, ShapeRulesOfSection01) {
  const auto w4 = preset_scheme("W4A16"), mx = preset_scheme("MXFP4"), nv = preset_scheme("NVFP4");
  EXPECT_TRUE(fits(w4, 4096, 4096).ok);
  auto r = fits(w4, 4096, 4100);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.reason.find("32"), std::string::npos);
  EXPECT_FALSE(fits(w4, 100, 4096).ok);
  EXPECT_TRUE(fits(preset_scheme("INT8"), 100, 100).ok);  // INT with quantized activations
  EXPECT_FALSE(fits(mx, 64, 48).ok);                      // 48 % 32
  EXPECT_TRUE(fits(nv, 64, 48).ok);                       // 48 % 16 == 0
  EXPECT_FALSE(fits(nv, 64, 40).ok);
  EXPECT_TRUE(fits(preset_scheme("FPW8A16"), 7, 13).ok);
  EXPECT_TRUE(fits(preset_scheme("BF16"), 7, 13).ok);
}

TEST(LayerBits, TableOfSection43) {
  const int64_t o = 4096, i = 4096;
  auto bpw = [&](const char* name) { return double(layer_bits(preset_scheme(name), o, i, false)) / double(o * i); };
  EXPECT_DOUBLE_EQ(bpw("W4A16"), 4 + 20.0 / 128);  // 4.156
  EXPECT_DOUBLE_EQ(bpw("W2A16"), 2.140625);
  EXPECT_DOUBLE_EQ(bpw("W2A16G64"), 2.28125);
  EXPECT_DOUBLE_EQ(bpw("W3A16"), 3.1484375);
  EXPECT_DOUBLE_EQ(bpw("W8A16"), 8.1875);
  EXPECT_DOUBLE_EQ(bpw("MXFP4"), 4.25);
  EXPECT_DOUBLE_EQ(bpw("MXFP8"), 8.25);
  EXPECT_DOUBLE_EQ(bpw("NVFP4"), 4.5);
  EXPECT_DOUBLE_EQ(bpw("BF16"), 16.0);
  EXPECT_EQ(layer_bits(preset_scheme("W4A16"), o, i, true), 4 * o * i);
  // n_g for G = -1 is out, for G = 0 it is 1; fp8 "sym" pays no zero point
  EXPECT_EQ(layer_bits(preset_scheme("FP8_STATIC"), 10, 64, false), 8 * 640 + 10 * 16);
  EXPECT_EQ(layer_bits(preset_scheme("FPW8A16"), 10, 64, false), 8 * 640 + 16);
  // asym INT pays b zero-point bits too; in < G counts one group per row
  EXPECT_EQ(layer_bits(parse_scheme("bits=4,sym=false,group_size=128"), 8, 100, false), 4 * 800 + 8 * 20);
}

}  // namespace
}  // namespace sr
