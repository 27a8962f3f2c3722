// plan_gguf_types: llama.cpp's per-tensor type rules. Pinned to the files llama-quantize
// wrote for the 4m model (every mix there), and to the rules on larger shapes where the
// layer-dependent branches (use_more_bits, n/8, n/16, GQA, 70B) differ.
#include "export/gguf_plan.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "io/gguf_reader.h"
#include "model/model.h"
#include "testutil.h"

namespace sr {
namespace {

using T = GgmlType;

ModelConfig llama_config(int64_t layers, int64_t heads, int64_t kv_heads, int64_t hidden, int64_t ffn) {
  ModelConfig c;
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.hidden = hidden;
  c.head_dim = hidden / heads;
  c.intermediate = ffn;
  c.vocab = 32000;
  return c;
}

// Type of `name` in a plan.
GgmlType type_of(const std::vector<GgufTensorPlan>& plan, const std::string& name) {
  for (const GgufTensorPlan& t : plan) if (t.name == name) return t.type;
  ADD_FAILURE() << "no tensor " << name;
  return T::F32;
}

std::string blk(int64_t i, const std::string& rest) { return "blk." + std::to_string(i) + "." + rest + ".weight"; }

std::vector<GgufTensorPlan> plan(const ModelConfig& c, const std::string& mix, bool imatrix = false) {
  GgufPlanOptions o;
  o.has_imatrix = imatrix;
  o.log = false;
  return plan_gguf_types(c, parse_gguf_mix(mix), o);
}

TEST(GgufPlan, UseMoreBitsIsLlamaCpps) {
  std::vector<int64_t> more;
  for (int64_t i = 0; i < 32; ++i) if (gguf_use_more_bits(i, 32)) more.push_back(i);
  EXPECT_EQ(more, std::vector<int64_t>({0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31}));
  more.clear();
  for (int64_t i = 0; i < 4; ++i) if (gguf_use_more_bits(i, 4)) more.push_back(i);
  EXPECT_EQ(more, std::vector<int64_t>({2, 3}));
}

TEST(GgufPlan, MixNamesAndFileTypes) {
  EXPECT_EQ(parse_gguf_mix("Q4_K_M"), GgufMix::Q4_K_M);
  EXPECT_EQ(gguf_mix_info(GgufMix::Q4_K_M).file_type, 15u);
  EXPECT_EQ(gguf_mix_info(GgufMix::Q2_K_S).file_type, 21u);
  EXPECT_EQ(gguf_mix_info(GgufMix::BF16).file_type, 32u);
  EXPECT_EQ(gguf_mix_info(GgufMix::Q8_0).file_type, 7u);
  EXPECT_EQ(gguf_mixes().size(), 30u);
  try {
    parse_gguf_mix("q4_k_x");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("q4_k_m"), std::string::npos) << e.what();
  }
}

// Names, order, shapes and types of every llama-quantize output for the 4m model.
class PlanMatchesLlamaQuantize : public ::testing::TestWithParam<std::string> {};

TEST_P(PlanMatchesLlamaQuantize, TensorByTensor) {
  const std::string rel = "reference/llamacpp/tinystories-llama-4m/tinystories-llama-4m-" + GetParam() + ".gguf";
  SR_REQUIRE_SHARED(rel);
  GgufReader ref(test::shared(rel));
  auto m = Model::open(test::shared("models/tinystories-llama-4m"));
  std::string mix = GetParam();
  for (char& ch : mix) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  const std::vector<GgufTensorPlan> p = plan(m->config(), mix);
  ASSERT_EQ(p.size(), ref.tensors().size());
  for (size_t i = 0; i < p.size(); ++i) {
    const GgufTensorInfo& t = ref.tensors()[i];
    EXPECT_EQ(p[i].name, t.name) << i;
    EXPECT_EQ(p[i].shape, t.shape) << t.name;
    EXPECT_EQ(ggml_type_name(p[i].type), ggml_type_name(t.type)) << t.name;
  }
  EXPECT_EQ(ref.get<uint32_t>("general.file_type"), gguf_mix_info(parse_gguf_mix(mix)).file_type);
}

INSTANTIATE_TEST_SUITE_P(TinyStories4m, PlanMatchesLlamaQuantize,
                         ::testing::Values("Q8_0", "Q6_K", "Q5_K_M", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_1", "Q4_0",
                                           "Q3_K_M", "Q3_K_S", "Q2_K"));

// A Llama-2-7B shape: 32 layers, no GQA.
TEST(GgufPlan, LayerRulesOn32Layers) {
  const ModelConfig c = llama_config(32, 32, 32, 4096, 11008);
  auto p = plan(c, "q4_k_m");
  for (int64_t i = 0; i < 32; ++i) {
    const GgmlType want = gguf_use_more_bits(i, 32) ? T::Q6_K : T::Q4_K;
    EXPECT_EQ(type_of(p, blk(i, "attn_v")), want) << i;
    EXPECT_EQ(type_of(p, blk(i, "ffn_down")), want) << i;
    EXPECT_EQ(type_of(p, blk(i, "attn_q")), T::Q4_K);
  }
  EXPECT_EQ(type_of(p, "output.weight"), T::Q6_K);
  EXPECT_EQ(type_of(p, "token_embd.weight"), T::Q4_K);
  EXPECT_EQ(type_of(p, "output_norm.weight"), T::F32);
  p = plan(c, "q3_k_m");
  EXPECT_EQ(type_of(p, blk(1, "attn_v")), T::Q5_K);
  EXPECT_EQ(type_of(p, blk(2, "attn_v")), T::Q4_K);
  EXPECT_EQ(type_of(p, blk(1, "ffn_down")), T::Q5_K);  // i < 32/16
  EXPECT_EQ(type_of(p, blk(2, "ffn_down")), T::Q4_K);
  EXPECT_EQ(type_of(p, blk(5, "attn_output")), T::Q4_K);
  EXPECT_EQ(type_of(p, blk(5, "ffn_up")), T::Q3_K);
  p = plan(c, "q3_k_l");
  EXPECT_EQ(type_of(p, blk(9, "attn_v")), T::Q5_K);
  EXPECT_EQ(type_of(p, blk(9, "ffn_down")), T::Q5_K);
  EXPECT_EQ(type_of(p, blk(9, "attn_output")), T::Q5_K);
  p = plan(c, "q4_k_s");
  EXPECT_EQ(type_of(p, blk(3, "attn_v")), T::Q5_K);
  EXPECT_EQ(type_of(p, blk(4, "attn_v")), T::Q4_K);
  EXPECT_EQ(type_of(p, blk(3, "ffn_down")), T::Q5_K);  // i < 32/8
  EXPECT_EQ(type_of(p, blk(4, "ffn_down")), T::Q4_K);
  p = plan(c, "q2_k");
  EXPECT_EQ(type_of(p, blk(7, "attn_v")), T::Q3_K);  // n_gqa 1
  EXPECT_EQ(type_of(p, blk(7, "ffn_down")), T::Q3_K);
  EXPECT_EQ(type_of(p, blk(7, "attn_output")), T::Q3_K);
  EXPECT_EQ(type_of(p, blk(7, "attn_k")), T::Q2_K);
  p = plan(c, "q2_k_s");
  EXPECT_EQ(type_of(p, blk(3, "ffn_down")), T::Q4_K);
  EXPECT_EQ(type_of(p, blk(4, "ffn_down")), T::Q2_K);
  EXPECT_EQ(type_of(p, blk(4, "attn_v")), T::Q2_K);
  p = plan(c, "q5_k_s");
  for (const GgufTensorPlan& t : p)
    EXPECT_EQ(t.type, !t.weight_matrix ? T::F32 : t.name == "output.weight" ? T::Q6_K : T::Q5_K) << t.name;
  p = plan(c, "q8_0");
  EXPECT_EQ(type_of(p, "output.weight"), T::Q8_0);
  p = plan(c, "f16");
  for (const GgufTensorPlan& t : p) EXPECT_EQ(t.type, t.weight_matrix ? T::F16 : T::F32) << t.name;
  p = plan(c, "q4_0", /*imatrix=*/true);
  EXPECT_EQ(type_of(p, blk(3, "ffn_down")), T::Q4_1);
  EXPECT_EQ(type_of(p, blk(4, "ffn_down")), T::Q4_0);
  EXPECT_EQ(type_of(plan(c, "q4_0"), blk(3, "ffn_down")), T::Q4_0);  // only with an imatrix
}

// GQA >= 4 and the 70B attn_v bump (80 layers, 64 heads over 8 kv heads).
TEST(GgufPlan, GqaAnd70bRules) {
  ModelConfig c = llama_config(80, 64, 8, 8192, 28672);
  EXPECT_EQ(type_of(plan(c, "q2_k"), blk(10, "attn_v")), T::Q5_K);    // Q4_K (gqa 8), then 70B -> Q5_K
  EXPECT_EQ(type_of(plan(c, "q3_k_s"), blk(10, "attn_v")), T::Q5_K);  // Q3_K -> Q5_K
  EXPECT_EQ(type_of(plan(c, "q4_k_m"), blk(0, "attn_v")), T::Q6_K);   // Q6_K stays
  EXPECT_EQ(type_of(plan(c, "q5_k_s"), blk(10, "attn_v")), T::Q5_K);
  c = llama_config(32, 32, 8, 4096, 14336);  // Llama-3-8B: GQA 4, not 70B-shaped
  EXPECT_EQ(type_of(plan(c, "q2_k"), blk(10, "attn_v")), T::Q4_K);
  EXPECT_EQ(type_of(plan(c, "q2_k_s"), blk(10, "attn_v")), T::Q4_K);
  EXPECT_EQ(type_of(plan(c, "q3_k_s"), blk(10, "attn_v")), T::Q3_K);
}

TEST(GgufPlan, TiedEmbeddingsGetTheOutputRule) {
  ModelConfig c = llama_config(4, 4, 2, 256, 768);
  c.tie_embeddings = true;
  auto p = plan(c, "q4_k_m");
  for (const GgufTensorPlan& t : p) EXPECT_NE(t.name, "output.weight");
  EXPECT_EQ(type_of(p, "token_embd.weight"), T::Q6_K);
  EXPECT_EQ(type_of(plan(c, "q8_0"), "token_embd.weight"), T::Q8_0);
}

// Rows that are not a whole number of blocks: llama.cpp's fallback chain.
TEST(GgufPlan, FallbacksForOddRowLengths) {
  ModelConfig c = llama_config(8, 8, 8, 512, 992);  // 992 = 31 x 32: legacy blocks fit, k-quants do not
  auto p = plan(c, "q4_k_m");
  EXPECT_EQ(type_of(p, blk(0, "ffn_down")), T::Q8_0);  // Q6_K (use_more_bits) -> Q8_0
  EXPECT_EQ(type_of(p, blk(3, "ffn_down")), T::Q8_0);  // use_more_bits(3, 8) too
  EXPECT_EQ(type_of(p, blk(4, "ffn_down")), T::Q5_0);  // Q4_K -> Q5_0
  EXPECT_EQ(type_of(p, blk(4, "ffn_up")), T::Q4_K);    // rows of 512
  for (const GgufTensorPlan& t : p)
    if (t.name == blk(4, "ffn_down")) EXPECT_EQ(t.why, "fallback");
  EXPECT_EQ(type_of(plan(c, "q5_k_s"), blk(3, "ffn_down")), T::Q5_1);
  EXPECT_EQ(type_of(plan(c, "q2_k"), blk(3, "ffn_down")), T::Q4_0);    // Q3_K -> (iq4_nl) Q4_0
  EXPECT_EQ(type_of(plan(c, "q3_k_s"), blk(3, "ffn_down")), T::Q4_0);
  EXPECT_EQ(type_of(plan(c, "q4_0"), blk(3, "ffn_down")), T::Q4_0);
  c.intermediate = 1000;  // not even a multiple of 32: on to F16
  EXPECT_EQ(type_of(plan(c, "q4_k_m"), blk(3, "ffn_down")), T::F16);
  EXPECT_EQ(type_of(plan(c, "f32"), blk(3, "ffn_down")), T::F32);
  // Legacy mixes have no fallback: llama-quantize refuses, and so do we.
  try {
    plan(c, "q4_0");
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor blk.0.ffn_down.weight: rows of 1000 elements"), std::string::npos)
        << e.what();
  }
  // The output row (hidden 172, like stories260K) is not a multiple of 32 either.
  c = llama_config(5, 4, 4, 172, 512);
  EXPECT_THROW(plan(c, "q4_k_m"), Error);
}

TEST(GgufPlan, OverridesReplaceTheRule) {
  const ModelConfig c = llama_config(4, 4, 2, 256, 768);
  GgufPlanOptions o;
  o.log = false;
  o.overrides = {{"model.layers.1.mlp.down_proj.weight", T::Q2_K}, {"blk.2.attn_v.weight", T::Q8_0},
                 {"lm_head.weight", T::Q5_K}};
  auto p = plan_gguf_types(c, GgufMix::Q4_K_M, o);
  EXPECT_EQ(type_of(p, blk(1, "ffn_down")), T::Q2_K);
  EXPECT_EQ(type_of(p, blk(2, "attn_v")), T::Q8_0);
  EXPECT_EQ(type_of(p, "output.weight"), T::Q5_K);
  EXPECT_EQ(type_of(p, blk(3, "attn_v")), T::Q6_K);  // counters unaffected by overrides
  for (const GgufTensorPlan& t : p)
    if (t.name == "output.weight") EXPECT_EQ(t.why, "override");
  o.overrides = {{"blk.9.attn_v.weight", T::Q8_0}};
  EXPECT_THROW(plan_gguf_types(c, GgufMix::Q4_K_M, o), Error);
  o.overrides = {{"blk.0.attn_v.weight", T::TQ1_0}};  // no codec
  EXPECT_THROW(plan_gguf_types(c, GgufMix::Q4_K_M, o), Error);
  const ModelConfig odd = llama_config(4, 4, 4, 256, 992);
  o.overrides = {{"blk.0.ffn_down.weight", T::Q4_K}};  // 992 is no multiple of 256
  EXPECT_THROW(plan_gguf_types(odd, GgufMix::Q4_0, o), Error);
}

TEST(GgufPlan, OrderIsLlamaQuantizes) {
  ModelConfig c = llama_config(11, 4, 2, 256, 768);
  c.rope_scaling.type = "llama3";
  auto p = plan(c, "q4_k_m");
  std::vector<std::string> names;
  for (const GgufTensorPlan& t : p) names.push_back(t.name);
  EXPECT_EQ(std::vector<std::string>(names.begin(), names.begin() + 6),
            std::vector<std::string>({"output.weight", "output_norm.weight", "rope_freqs.weight", "token_embd.weight",
                                      "blk.0.attn_k.weight", "blk.0.attn_norm.weight"}));
  EXPECT_EQ(names[4 + 9 * 2], "blk.2.attn_k.weight");  // blk.2 before blk.10: by layer number
  EXPECT_EQ(names.back(), "blk.10.ffn_up.weight");
  EXPECT_EQ(type_of(p, "rope_freqs.weight"), T::F32);
}

}  // namespace
}  // namespace sr
