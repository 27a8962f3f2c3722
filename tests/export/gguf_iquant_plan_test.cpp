// The i-quant mixes of plan_gguf_types (export/gguf_plan.h): llama.cpp's per-tensor rules for
// IQ1_S ... IQ4_XS. The 4m model's types are pinned to what llama-quantize (c392e50) wrote for
// it with llama-imatrix's imatrix (all twelve mixes) and without (the five it allows): the
// table below was read from those files (bench/iquant_mix_types.sh regenerates it). The
// tests compare types only, so they hold whether or not a type's encoder exists; the
// layer-dependent rules, which the 4-layer model cannot show, are checked on larger shapes.
// Also: the refusals without an importance matrix and the "not implemented" error of a
// quantization target whose types signround cannot produce yet.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "common/error.h"
#include "export/gguf_plan.h"
#include "export/gguf_target.h"
#include "model/model.h"
#include "testutil.h"

namespace sr {
namespace {

using T = GgmlType;

// llama-quantize's types for the 4m model (4 layers, 4 heads, 2 kv heads, rows of 256 and 768):
// output, token_embd, then a block's attn_k, attn_output, attn_q, attn_v, ffn_down, ffn_gate,
// ffn_up. `last` differs from `block` only where a rule depends on the layer (iq3_xs's
// ffn_gate/ffn_up for n/8 <= i < 7n/8: blocks 0..2 of 4).
struct Expected {
  const char* mix;
  const char* output;
  const char* embd;
  const char* block;  // blocks 0..2
  const char* last;   // block 3
};
const Expected kLlamaQuantize4m[] = {
    {"iq1_s", "q5_K", "q2_K", "iq1_s iq2_xxs iq1_s q2_K iq1_s iq1_s iq1_s", nullptr},
    {"iq1_m", "q5_K", "q2_K", "iq1_m iq2_xxs iq1_m q2_K iq1_m iq1_m iq1_m", nullptr},
    {"iq2_xxs", "q5_K", "q2_K", "iq2_xxs iq2_xxs iq2_xxs q2_K iq2_xxs iq2_xxs iq2_xxs", nullptr},
    {"iq2_xs", "q5_K", "q2_K", "iq2_xs iq2_xs iq2_xs q2_K iq2_xs iq2_xs iq2_xs", nullptr},
    {"iq2_s", "q5_K", "iq3_s", "iq2_xs iq3_s iq2_xs iq3_s iq2_xs iq2_xs iq2_xs", nullptr},
    {"iq2_m", "q5_K", "iq3_s", "iq2_s iq3_s iq2_s iq3_s iq2_s iq2_s iq2_s", nullptr},
    {"iq3_xxs", "q5_K", "iq3_s", "iq2_s iq3_s iq2_s iq3_xxs iq3_xxs iq3_xxs iq3_xxs", nullptr},
    {"iq3_xs", "q6_K", "iq3_s", "iq3_xxs iq3_s iq3_xxs iq3_s iq3_s iq3_xxs iq3_xxs",
     "iq3_xxs iq3_s iq3_xxs iq3_s iq3_s iq3_s iq3_s"},
    {"iq3_s", "q6_K", "iq3_s", "iq3_s iq3_s iq3_s iq3_s iq3_s iq3_s iq3_s", nullptr},
    {"iq3_m", "q6_K", "iq3_s", "iq3_s q4_K iq3_s q4_K iq3_s iq3_s iq3_s", nullptr},
    {"iq4_nl", "q6_K", "iq4_nl", "iq4_nl iq4_nl iq4_nl iq4_nl iq4_nl iq4_nl iq4_nl", nullptr},
    {"iq4_xs", "q6_K", "iq4_xs", "iq4_xs iq4_xs iq4_xs iq4_xs iq4_xs iq4_xs iq4_xs", nullptr},
};
// The mixes llama-quantize also writes without an imatrix; for the 4m model their types are the
// same (the imatrix-dependent rules concern i < n/8 = 0 layers). The others it refuses.
const char* const kWithoutImatrix[] = {"iq3_xs", "iq3_s", "iq3_m", "iq4_nl", "iq4_xs"};

std::vector<std::string> words(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    const size_t j = s.find(' ', i);
    out.push_back(s.substr(i, j - i));
    i = j == std::string::npos ? s.size() : j + 1;
  }
  return out;
}

std::vector<GgufTensorPlan> plan(const ModelConfig& c, const std::string& mix, bool imatrix) {
  GgufPlanOptions o;
  o.has_imatrix = imatrix;
  o.log = false;
  return plan_gguf_types(c, parse_gguf_mix(mix), o);
}

std::string type_of(const std::vector<GgufTensorPlan>& p, const std::string& name) {
  for (const GgufTensorPlan& t : p) if (t.name == name) return ggml_type_name(t.type);
  ADD_FAILURE() << "no tensor " << name;
  return "";
}

const char* const kLinears[] = {"attn_k", "attn_output", "attn_q", "attn_v", "ffn_down", "ffn_gate", "ffn_up"};

void expect_llama_types(const ModelConfig& c, const Expected& e, bool imatrix) {
  SCOPED_TRACE(std::string(e.mix) + (imatrix ? " with imatrix" : " without imatrix"));
  const std::vector<GgufTensorPlan> p = plan(c, e.mix, imatrix);
  EXPECT_EQ(type_of(p, "output.weight"), e.output);
  EXPECT_EQ(type_of(p, "token_embd.weight"), e.embd);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::vector<std::string> want = words(i == 3 && e.last ? e.last : e.block);
    ASSERT_EQ(want.size(), 7u);
    for (size_t j = 0; j < 7; ++j) {
      const std::string name = "blk." + std::to_string(i) + "." + kLinears[j] + ".weight";
      EXPECT_EQ(type_of(p, name), want[j]) << name;
    }
    EXPECT_EQ(type_of(p, "blk." + std::to_string(i) + ".attn_norm.weight"), "f32");
  }
}

TEST(GgufIquantPlan, MixNamesFileTypesAndBaseTypes) {
  EXPECT_EQ(gguf_mixes().size(), 30u);
  const std::pair<const char*, uint32_t> ftypes[] = {{"iq2_xxs", 19}, {"iq2_xs", 20}, {"iq3_xs", 22},
                                                     {"iq3_xxs", 23}, {"iq1_s", 24},  {"iq4_nl", 25},
                                                     {"iq3_s", 26},   {"iq3_m", 27},  {"iq2_s", 28},
                                                     {"iq2_m", 29},   {"iq4_xs", 30}, {"iq1_m", 31}};
  for (const auto& [name, ftype] : ftypes) EXPECT_EQ(gguf_mix_info(parse_gguf_mix(name)).file_type, ftype) << name;
  EXPECT_EQ(gguf_mix_info(parse_gguf_mix("IQ2_S")).base, T::IQ2_XS);
  EXPECT_EQ(gguf_mix_info(parse_gguf_mix("iq2_m")).base, T::IQ2_S);
  EXPECT_EQ(gguf_mix_info(parse_gguf_mix("iq3_xs")).base, T::IQ3_S);
  EXPECT_EQ(gguf_mix_info(parse_gguf_mix("iq3_m")).base, T::IQ3_S);
}

TEST(GgufIquantPlan, TypesAreLlamaQuantizesFor4mModel) {
  SR_REQUIRE_SHARED("models/tinystories-llama-4m");
  auto m = Model::open(test::shared("models/tinystories-llama-4m"));
  for (const Expected& e : kLlamaQuantize4m) expect_llama_types(m->config(), e, true);
  for (const char* mix : kWithoutImatrix)
    for (const Expected& e : kLlamaQuantize4m)
      if (std::string(e.mix) == mix) expect_llama_types(m->config(), e, false);
}

TEST(GgufIquantPlan, RefusedWithoutImatrixAsLlamaQuantizeDoes) {
  SR_REQUIRE_SHARED("models/tinystories-llama-4m");
  auto m = Model::open(test::shared("models/tinystories-llama-4m"));
  // The mixes llama-quantize's main() refuses.
  for (const char* mix : {"iq1_s", "iq1_m", "iq2_xxs", "iq2_xs", "iq2_s"}) {
    const std::string err = test::error_of([&] { plan(m->config(), mix, false); });
    EXPECT_NE(err.find(std::string("mix ") + mix + " needs an importance matrix"), std::string::npos) << err;
    EXPECT_NE(err.find("garbage"), std::string::npos) << err;
  }
  // The mixes whose tensors it refuses one by one: iq2_m's IQ2_S matrices, iq3_xxs's attn_k (IQ2_S).
  std::string err = test::error_of([&] { plan(m->config(), "iq2_m", false); });
  EXPECT_NE(err.find("tensor blk.0.attn_k.weight is planned as iq2_s, which needs an importance matrix"),
            std::string::npos) << err;
  err = test::error_of([&] { plan(m->config(), "iq3_xxs", false); });
  EXPECT_NE(err.find("tensor blk.0.attn_k.weight is planned as iq2_s"), std::string::npos) << err;
  // A user's type too; token_embd never has an importance (llama-imatrix does not collect it).
  // (The controls take only types with a codec: this part runs once the grid types land.)
  if (ggml_type_traits(T::IQ2_XXS).supported() && ggml_type_traits(T::IQ1_M).supported()) {
    GgufPlanOptions o;
    o.log = false;
    o.has_imatrix = true;
    o.controls.token_embd_type = T::IQ2_XXS;
    err = test::error_of([&] { plan_gguf_types(m->config(), GgufMix::Q4_K_M, o); });
    EXPECT_NE(err.find("tensor token_embd.weight is planned as iq2_xxs"), std::string::npos) << err;
    o.controls.token_embd_type = T::IQ1_M;  // IQ1_M is allowed there
    EXPECT_NO_THROW(plan_gguf_types(m->config(), GgufMix::Q4_K_M, o));
  }
  // The k-quant mix q2_k_s keeps its old behaviour: a note, no refusal.
  EXPECT_NO_THROW(plan(m->config(), "q2_k_s", false));
}

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

std::string blk(int64_t i, const std::string& rest) { return "blk." + std::to_string(i) + "." + rest + ".weight"; }

// llama_tensor_get_type's layer and shape conditions on a 32-layer model (n/8 = 4, 7n/8 = 28).
TEST(GgufIquantPlan, LayerAndShapeRules) {
  const ModelConfig mha = llama_config(32, 32, 32, 4096, 11008);   // n_gqa 1
  const ModelConfig gqa = llama_config(32, 32, 8, 4096, 14336);    // n_gqa 4
  auto p = plan(mha, "iq2_xxs", true);
  EXPECT_EQ(type_of(p, blk(3, "ffn_down")), "q2_K");  // i < n/8
  EXPECT_EQ(type_of(p, blk(4, "ffn_down")), "iq2_xxs");
  EXPECT_EQ(type_of(p, blk(9, "attn_v")), "q2_K");
  EXPECT_EQ(type_of(plan(gqa, "iq2_xxs", true), blk(9, "attn_v")), "q4_K");
  p = plan(mha, "iq2_m", true);
  EXPECT_EQ(type_of(p, blk(0, "ffn_down")), "iq3_s");
  EXPECT_EQ(type_of(p, blk(31, "ffn_down")), "iq2_s");
  p = plan(mha, "iq3_xs", true);
  EXPECT_EQ(type_of(p, blk(3, "ffn_gate")), "iq3_s");  // n/8 <= i < 7n/8 only
  EXPECT_EQ(type_of(p, blk(4, "ffn_up")), "iq3_xxs");
  EXPECT_EQ(type_of(p, blk(27, "ffn_gate")), "iq3_xxs");
  EXPECT_EQ(type_of(p, blk(28, "ffn_gate")), "iq3_s");
  EXPECT_EQ(type_of(plan(gqa, "iq3_xs", true), blk(0, "attn_v")), "q4_K");
  p = plan(mha, "iq3_m", true);
  EXPECT_EQ(type_of(p, blk(3, "ffn_down")), "q4_K");
  EXPECT_EQ(type_of(p, blk(4, "ffn_down")), "iq3_s");
  // iq3_xxs without an imatrix (only planning: llama-quantize would refuse its IQ2_S tensors) and with.
  GgufPlanOptions o;
  o.log = false;
  o.controls.tensor_types.push_back({SafeRegex("attn_[qk]", "test"), T::Q4_K});  // keep IQ2_S out
  p = plan_gguf_types(mha, GgufMix::IQ3_XXS, o);
  EXPECT_EQ(type_of(p, blk(3, "ffn_down")), "q4_K");
  EXPECT_EQ(type_of(p, blk(4, "ffn_down")), "q3_K");
  EXPECT_EQ(type_of(p, blk(4, "attn_v")), "iq3_s");
  p = plan(mha, "iq3_xxs", true);
  EXPECT_EQ(type_of(p, blk(3, "ffn_down")), "iq3_xxs");
  EXPECT_EQ(type_of(p, blk(4, "attn_v")), "iq3_xxs");
  EXPECT_EQ(type_of(plan(gqa, "iq3_xxs", true), blk(4, "attn_v")), "q4_K");
  // iq4_nl / iq4_xs: Q5_K ffn_down for i < n/8 only without an imatrix; Q5_K attn_v with GQA >= 4.
  for (const char* mix : {"iq4_nl", "iq4_xs"}) {
    EXPECT_EQ(type_of(plan(mha, mix, false), blk(3, "ffn_down")), "q5_K") << mix;
    EXPECT_EQ(type_of(plan(mha, mix, false), blk(4, "ffn_down")), mix) << mix;
    EXPECT_EQ(type_of(plan(mha, mix, true), blk(3, "ffn_down")), mix) << mix;
    EXPECT_EQ(type_of(plan(gqa, mix, true), blk(0, "attn_v")), "q5_K") << mix;
    EXPECT_EQ(type_of(plan(mha, mix, true), blk(0, "attn_v")), mix) << mix;
  }
  // The 70B attn_v bump applies to iq3_s's Q4_K, not to the low-bit mixes.
  const ModelConfig b70 = llama_config(80, 64, 8, 8192, 28672);
  EXPECT_EQ(type_of(plan(b70, "iq3_s", true), blk(5, "attn_v")), "q5_K");
  EXPECT_EQ(type_of(plan(b70, "iq2_xs", true), blk(5, "attn_v")), "q4_K");
}

TEST(GgufIquantPlan, EightExpertRules) {
  ModelConfig c = llama_config(32, 32, 8, 4096, 14336);
  c.arch = Arch::Mixtral;
  c.arch_name = "MixtralForCausalLM";
  c.moe.n_experts = 8;
  c.moe.n_used = 2;
  c.moe.expert_intermediate = 14336;
  c.moe.norm_topk_prob = true;
  // Low-bit mixes: attn_k Q4_K, attn_v Q4_K (>= 4 experts), attn_output Q5_K; no Q8_0.
  auto p = plan(c, "iq2_xxs", true);
  EXPECT_EQ(type_of(p, blk(7, "attn_k")), "q4_K");
  EXPECT_EQ(type_of(p, blk(7, "attn_v")), "q4_K");
  EXPECT_EQ(type_of(p, blk(7, "attn_output")), "q5_K");
  EXPECT_EQ(type_of(p, blk(7, "ffn_down_exps")), "iq2_xxs");
  EXPECT_EQ(type_of(p, blk(2, "ffn_down_exps")), "q2_K");
  // The others: attn_k / attn_v Q8_0, attn_output Q5_K; iq3_m's ffn_down also where use_more_bits.
  p = plan(c, "iq3_m", true);
  EXPECT_EQ(type_of(p, blk(7, "attn_k")), "q8_0");
  EXPECT_EQ(type_of(p, blk(7, "attn_v")), "q8_0");
  EXPECT_EQ(type_of(p, blk(7, "attn_output")), "q5_K");
  EXPECT_EQ(type_of(p, blk(6, "ffn_down_exps")), gguf_use_more_bits(6, 32) ? "q4_K" : "iq3_s");
  EXPECT_EQ(type_of(p, blk(7, "ffn_down_exps")), gguf_use_more_bits(7, 32) ? "q4_K" : "iq3_s");
  EXPECT_EQ(type_of(p, blk(7, "ffn_gate_inp")), "f32");
}

TEST(GgufIquantPlan, FallbackToIq4NlForRowsThatAreNoWholeSuperBlock) {
  // Rows of 4096 + 32 elements: the 256-element i-quants fall back to IQ4_NL (32), as in llama.cpp.
  const ModelConfig c = llama_config(8, 8, 8, 4096 + 128, 11008 + 32);
  auto p = plan(c, "iq3_s", true);
  EXPECT_EQ(type_of(p, blk(0, "ffn_down")), "iq4_nl");
  EXPECT_EQ(type_of(p, blk(0, "ffn_up")), "iq4_nl");
  p = plan(c, "iq4_xs", true);
  EXPECT_EQ(type_of(p, blk(0, "ffn_down")), "iq4_nl");
}

TEST(GgufIquantPlan, EveryIquantMixIsATarget) {
  SR_REQUIRE_SHARED("models/tinystories-llama-4m");
  auto m = Model::open(test::shared("models/tinystories-llama-4m"));
  // Every type of every i-quant mix is a quantization scheme (the grid types through
  // ggml_iquants_grid.h's frozen path, IQ4 through ggml_iquants_nl.h), with an imatrix.
  const auto tunable = gguf_matrix_types();
  for (const char* mix : {"iq1_s", "iq1_m", "iq2_xxs", "iq2_xs", "iq2_s", "iq2_m", "iq3_xxs", "iq3_xs", "iq3_s",
                          "iq3_m", "iq4_nl", "iq4_xs"}) {
    EXPECT_NO_THROW(plan_gguf_target(m->config(), parse_gguf_mix(mix), true)) << mix;
    EXPECT_EQ(std::count(tunable.begin(), tunable.end(), gguf_mix_info(parse_gguf_mix(mix)).base), 1) << mix;
  }
  // Without one, llama.cpp's refusals stay (the very-low-bit mixes, iq2_m's IQ2_S tensors).
  for (const char* mix : {"iq1_s", "iq2_xxs", "iq2_m"})
    EXPECT_THROW(plan_gguf_target(m->config(), parse_gguf_mix(mix), false), Error) << mix;
  EXPECT_NO_THROW(plan_gguf_target(m->config(), parse_gguf_mix("iq3_s"), false));
}

}  // namespace
}  // namespace sr

namespace sr {
namespace {

// Through the CLI: the refusal without an imatrix stops the run before any work
// and leaves no output.
TEST(GgufIquantPlan, QuantizeCommandRefusesWithTheReason) {
  SR_REQUIRE_SHARED("models/tinystories-llama-4m");
  test::TempDir dir;
  auto run = [&](const std::string& args) {
    return test::run_command(test::cli() + " quantize --quiet --model " + test::shared("models/tinystories-llama-4m") +
                             " --output_dir " + (dir / "out.gguf") + " " + args);
  };
  auto r = run("--iters 0 --disable_opt_rtn --format gguf:iq2_xxs");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("mix iq2_xxs needs an importance matrix"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "out.gguf"));
}

// llama-quantize (c392e50) without an imatrix, checked by hand on the 4m model's F32 file: the IQ1_M
// mix is refused in main() (above); IQ1_M is refused only inside the blocks, so
// `--token-embedding-type iq1_m --output-tensor-type iq1_m ... Q4_K_M` writes a file, while
// `--output-tensor-type iq2_xxs` stops with "Missing importance matrix for tensor output.weight".
TEST(GgufIquantPlan, Iq1mOutsideTheBlocksNeedsNoImatrixAsLlamaQuantize) {
  SR_REQUIRE_SHARED("models/tinystories-llama-4m");
  auto m = Model::open(test::shared("models/tinystories-llama-4m"));
  GgufPlanOptions o;
  o.log = false;
  o.controls.output_type = T::IQ1_M;
  o.controls.token_embd_type = T::IQ1_M;
  const auto p = plan_gguf_types(m->config(), GgufMix::Q4_K_M, o);
  EXPECT_EQ(type_of(p, "output.weight"), "iq1_m");
  EXPECT_EQ(type_of(p, "token_embd.weight"), "iq1_m");
  o.controls.output_type = T::IQ2_XXS;
  std::string err = test::error_of([&] { plan_gguf_types(m->config(), GgufMix::Q4_K_M, o); });
  EXPECT_NE(err.find("tensor output.weight is planned as iq2_xxs, which needs an importance matrix"),
            std::string::npos) << err;
  o.controls.output_type.reset();
  o.overrides["blk.0.attn_v.weight"] = T::IQ1_M;  // inside a block IQ1_M needs one
  err = test::error_of([&] { plan_gguf_types(m->config(), GgufMix::Q4_K_M, o); });
  EXPECT_NE(err.find("tensor blk.0.attn_v.weight is planned as iq1_m, which needs an importance matrix"),
            std::string::npos) << err;
  o.has_imatrix = true;
  EXPECT_NO_THROW(plan_gguf_types(m->config(), GgufMix::Q4_K_M, o));
  // A given imatrix file must cover the tensor: llama-quantize looks its name up.
  o.imatrix_tensors = std::set<std::string>{"output.weight"};
  err = test::error_of([&] { plan_gguf_types(m->config(), GgufMix::Q4_K_M, o); });
  EXPECT_NE(err.find("tensor blk.0.attn_v.weight is planned as iq1_m, which needs an importance matrix for it and the "
                     "imatrix file has no entry for it"),
            std::string::npos) << err;
  o.imatrix_tensors->insert("blk.0.attn_v.weight");
  EXPECT_NO_THROW(plan_gguf_types(m->config(), GgufMix::Q4_K_M, o));
  o.controls.output_type = T::IQ2_XXS;
  o.imatrix_tensors->erase("output.weight");
  err = test::error_of([&] { plan_gguf_types(m->config(), GgufMix::Q4_K_M, o); });
  EXPECT_NE(err.find("tensor output.weight is planned as iq2_xxs"), std::string::npos) << err;
}

}  // namespace
}  // namespace sr
