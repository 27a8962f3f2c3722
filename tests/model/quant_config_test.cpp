// quantization_config parsing and per-layer resolution (model/quant_config.h), and the
// QuantScheme <-> auto-round key mapping (quant/formats/autoround_scheme.h).
#include <gtest/gtest.h>

#include "common/error.h"
#include "model/quant_config.h"
#include "quant/formats/autoround_scheme.h"

namespace sr {
namespace {

QuantConfig parse(const nlohmann::json& q) {
  auto c = parse_quant_config({{"quantization_config", q}}, "test/config.json");
  EXPECT_TRUE(c.has_value());
  return *c;
}

TEST(QuantConfig, AutoRoundResolution) {
  const QuantConfig c = parse({{"quant_method", "auto-round"},
                               {"packing_format", "auto_round:auto_gptq"},
                               {"bits", 4},
                               {"group_size", 128},
                               {"sym", true},
                               {"data_type", "int"},
                               {"block_name_to_quantize", "model.layers"},
                               {"extra_config",
                                {{"model.layers.0.mlp.down_proj", {{"bits", 8}}},
                                 {".*self_attn\\.k_proj.*", {{"bits", 2}, {"group_size", 64}}},
                                 {"mlp.gate", {{"bits", 16}}},
                                 {"lm_head", {{"bits", 8}, {"group_size", 128}, {"sym", true}, {"data_type", "int"}}}}}});
  EXPECT_EQ(c.packing_format, "auto_round:auto_gptq");
  EXPECT_EQ(c.zero_offset, 1);
  EXPECT_EQ(c.layer("model.layers.0.mlp.down_proj").scheme.bits, 8);           // exact name
  EXPECT_EQ(c.layer("model.layers.1.mlp.down_proj").scheme.bits, 4);           // default
  EXPECT_EQ(c.layer("model.layers.3.self_attn.k_proj").scheme.group_size, 64);  // regex
  EXPECT_EQ(c.layer("model.layers.3.mlp.gate_proj").family, PackedFamily::None);  // substring key
  EXPECT_EQ(c.layer("lm_head").scheme.bits, 8);                                 // listed outside the blocks
  EXPECT_EQ(c.layer("model.layers.2.self_attn.q_proj").family, PackedFamily::Int);
  const QuantConfig plain = parse({{"quant_method", "auto-round"}, {"bits", 4}, {"group_size", 128}, {"sym", false}});
  EXPECT_EQ(plain.layer("lm_head").family, PackedFamily::None);          // outside the blocks
  EXPECT_EQ(plain.packing_format, "auto_round");                         // legacy: no packing_format, asym
  EXPECT_EQ(plain.zero_offset, 0);
}

TEST(QuantConfig, GptqDynamicAndModules) {
  const QuantConfig c = parse({{"quant_method", "gptq"},
                               {"bits", 4},
                               {"group_size", 128},
                               {"desc_act", false},
                               {"dynamic", {{"-:.*model\\.layers\\.1\\.self_attn\\.q_proj.*", nlohmann::json::object()},
                                            {"+:.*down_proj.*", {{"bits", 8}, {"group_size", 32}, {"sym", true}}}}},
                               {"modules_in_block_to_quantize",
                                nlohmann::json::array({nlohmann::json::array({"self_attn.q_proj", "mlp.down_proj"})})}});
  EXPECT_EQ(c.zero_offset, 1);
  EXPECT_EQ(c.layer("model.layers.1.self_attn.q_proj").family, PackedFamily::None);
  EXPECT_EQ(c.layer("model.layers.0.self_attn.q_proj").scheme.bits, 4);
  EXPECT_EQ(c.layer("model.layers.0.mlp.down_proj").scheme.bits, 8);
  EXPECT_EQ(c.layer("model.layers.0.mlp.up_proj").family, PackedFamily::None);  // not in modules list
  EXPECT_EQ(c.layer("lm_head").family, PackedFamily::None);
  const QuantConfig v2 = parse({{"quant_method", "gptq"}, {"bits", 4}, {"checkpoint_format", "gptq_v2"}});
  EXPECT_EQ(v2.zero_offset, 0);
}

TEST(QuantConfig, MxNvFamiliesAndErrors) {
  const QuantConfig mx = parse({{"quant_method", "auto-round"}, {"packing_format", "auto_round:llm_compressor"},
                                {"bits", 8}, {"group_size", 32}, {"data_type", "mx_fp"}});
  EXPECT_EQ(mx.layer("model.layers.0.mlp.up_proj").family, PackedFamily::Mx);
  const QuantConfig nv = parse({{"quant_method", "auto-round"}, {"bits", 4}, {"group_size", 16}, {"data_type", "nv_fp"}});
  EXPECT_EQ(nv.packing_format, "auto_round:llm_compressor");
  EXPECT_EQ(nv.layer("model.layers.0.mlp.up_proj").family, PackedFamily::Nv);
  const QuantConfig fp8 = parse({{"quant_method", "auto-round"}, {"bits", 8}, {"data_type", "fp"}});
  EXPECT_THROW(fp8.layer("model.layers.0.mlp.up_proj"), Error);
  EXPECT_THROW(parse_quant_config({{"quantization_config", {{"quant_method", "awq"}, {"bits", 4}}}}, "c"), Error);
  EXPECT_THROW(parse_quant_config({{"quantization_config", {{"quant_method", "gptq"}}}}, "c"), Error);
  EXPECT_THROW(parse_quant_config({{"quantization_config", {{"quant_method", "auto-round"}, {"bits", 4},
                                                            {"extra_config", {1, 2}}}}}, "c"), Error);
  EXPECT_FALSE(parse_quant_config({{"hidden_size", 8}}, "c").has_value());
  const QuantConfig badre = parse({{"quant_method", "auto-round"}, {"bits", 4}, {"extra_config", {{"(", {{"bits", 8}}}}}});
  EXPECT_THROW(badre.layer("model.layers.0.mlp.up_proj"), Error);
}

TEST(AutoRoundScheme, PresetsRoundTrip) {
  for (const auto& [name, s] : preset_schemes()) {
    const nlohmann::json j = nlohmann::json::parse(autoround_scheme_json(s).dump());
    EXPECT_EQ(scheme_from_autoround_json(j, name), s) << name << " " << j.dump();
  }
  const auto nv = autoround_scheme_json(preset_scheme("NVFP4"));
  EXPECT_EQ(nv["act_data_type"], "nv_fp4_with_static_gs");
  EXPECT_EQ(nv["act_dynamic"], true);
  EXPECT_EQ(autoround_scheme_json(preset_scheme("BF16"))["data_type"], "fp");
  // GPTQ "-:" entries carry only bits; auto-round's extra keys are ignored.
  EXPECT_FALSE(scheme_from_autoround_json({{"bits", 16}}, "x").quantized());
  EXPECT_EQ(scheme_from_autoround_json({{"bits", 2}, {"super_bits", nullptr}, {"scale_dtype", "fp16"}}, "x").bits, 2);
  EXPECT_THROW(scheme_from_autoround_json({{"bits", 4}, {"data_type", "nope"}}, "x"), Error);
}

}  // namespace
}  // namespace sr
