// Mixture-of-experts models (Mixtral, Qwen2-MoE, Qwen3-MoE): configs, the block description,
// routing against hand-computed cases, the batched expert forward against a per-token reference,
// experts without tokens, loading, bad input, and quantization end to end on random models.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <cstring>
#include <set>

#include "common/error.h"
#include "model/tensor_convert.h"
#include "model/model.h"
#include "random_model.h"
#include "testutil.h"

namespace sr {
namespace {
namespace fs = std::filesystem;
using test::error_of;

const char* const kMoeArchs[] = {"MixtralForCausalLM", "Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM"};

test::RandomModelSpec moe_spec(const std::string& arch, int64_t experts = 4) {
  test::RandomModelSpec s;
  s.arch = arch;
  s.experts = experts;
  s.experts_used = 2;
  s.intermediate = 48;
  s.shared_intermediate = 80;
  return s;
}

nlohmann::json qwen3_moe_config() {
  return {{"architectures", {"Qwen3MoeForCausalLM"}}, {"hidden_size", 64}, {"intermediate_size", 128},
          {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"vocab_size", 96},
          {"num_experts", 8}, {"num_experts_per_tok", 2}, {"moe_intermediate_size", 32}, {"norm_topk_prob", true}};
}

TEST(Moe, ConfigsOfEachFamily) {
  ModelConfig q3 = parse_hf_config(qwen3_moe_config().dump(), "config.json");
  EXPECT_TRUE(q3.is_moe());
  EXPECT_EQ(q3.moe.n_experts, 8);
  EXPECT_EQ(q3.moe.n_used, 2);
  EXPECT_EQ(q3.moe.expert_intermediate, 32);
  EXPECT_EQ(q3.moe.shared_intermediate, 0);
  EXPECT_TRUE(q3.moe.norm_topk_prob);
  EXPECT_TRUE(q3.qk_norm);

  nlohmann::json mx = qwen3_moe_config();
  mx["architectures"] = {"MixtralForCausalLM"};
  mx.erase("num_experts");
  mx.erase("moe_intermediate_size");
  mx.erase("norm_topk_prob");
  mx["num_local_experts"] = 8;
  ModelConfig m = parse_hf_config(mx.dump(), "config.json");
  EXPECT_EQ(m.moe.n_experts, 8);
  EXPECT_EQ(m.moe.expert_intermediate, 128);  // Mixtral's experts are intermediate_size wide
  EXPECT_TRUE(m.moe.norm_topk_prob);          // Mixtral always renormalises
  EXPECT_FALSE(m.qk_norm);

  nlohmann::json q2 = qwen3_moe_config();
  q2["architectures"] = {"Qwen2MoeForCausalLM"};
  q2["shared_expert_intermediate_size"] = 96;
  q2.erase("norm_topk_prob");
  ModelConfig c2 = parse_hf_config(q2.dump(), "config.json");
  EXPECT_EQ(c2.moe.shared_intermediate, 96);
  EXPECT_FALSE(c2.moe.norm_topk_prob);  // the Qwen default
  EXPECT_TRUE(c2.qkv_bias);
}

TEST(Moe, BadConfigsNameTheField) {
  auto err = [](nlohmann::json j) { return error_of([&] { parse_hf_config(j.dump(), "cfg/config.json"); }); };
  nlohmann::json j = qwen3_moe_config();
  j["num_experts_per_tok"] = 9;
  EXPECT_NE(err(j).find("num_experts_per_tok 9 must lie in [1, num_experts = 8]"), std::string::npos) << err(j);
  j = qwen3_moe_config();
  j.erase("num_experts");
  EXPECT_NE(err(j).find("missing field 'num_experts'"), std::string::npos) << err(j);
  j = qwen3_moe_config();
  j["num_experts"] = 1 << 20;
  EXPECT_NE(err(j).find("num_experts 1048576 is over the limit"), std::string::npos) << err(j);
  j = qwen3_moe_config();
  j["moe_intermediate_size"] = 0;
  EXPECT_NE(err(j).find("intermediate size must be positive"), std::string::npos) << err(j);
  j = qwen3_moe_config();
  j["decoder_sparse_step"] = 0;
  EXPECT_NE(err(j).find("decoder_sparse_step must be at least 1, got 0"), std::string::npos) << err(j);
  j = qwen3_moe_config();
  j["mlp_only_layers"] = {2};  // 2 layers
  EXPECT_NE(err(j).find("mlp_only_layers entry 2 is not a layer index in [0, 2)"), std::string::npos) << err(j);
  j = qwen3_moe_config();
  j["mlp_only_layers"] = "0";
  EXPECT_NE(err(j).find("mlp_only_layers must be a list"), std::string::npos) << err(j);
  j = qwen3_moe_config();
  j["mlp_only_layers"] = nlohmann::json::array();  // empty: every block sparse, as released models say
  EXPECT_EQ(err(j), "");
}

TEST(Moe, BlockDescriptionHoldsRouterExpertsAndSharedExpert) {
  nlohmann::json q2 = qwen3_moe_config();
  q2["architectures"] = {"Qwen2MoeForCausalLM"};
  q2["shared_expert_intermediate_size"] = 96;
  const ModelConfig c = parse_hf_config(q2.dump(), "config.json");
  const BlockDesc d = describe_block(c, 0);
  ASSERT_EQ(d.count(), 4 + 1 + 3 * 8 + 4);
  const LinearDesc& router = d.linears[moe::kRouter];
  EXPECT_EQ(router.module, "mlp.gate");
  EXPECT_EQ(router.gguf, "ffn_gate_inp");
  EXPECT_EQ(router.out, 8);
  EXPECT_TRUE(router.keep_16bit);
  const LinearDesc& down5 = d.linears[size_t(moe::expert_linear(5, moe::Down))];
  EXPECT_EQ(down5.module, "mlp.experts.5.down_proj");
  EXPECT_EQ(down5.label, "exp5.down");
  EXPECT_EQ(down5.gguf, "ffn_down_exps");
  EXPECT_EQ(down5.expert, 5);
  EXPECT_EQ(down5.out, 64);
  EXPECT_EQ(down5.in, 32);
  // gate and up of one expert are one fused group; different experts' are not.
  EXPECT_EQ(d.linears[size_t(moe::expert_linear(5, moe::Gate))].fuse_group,
            d.linears[size_t(moe::expert_linear(5, moe::Up))].fuse_group);
  EXPECT_NE(d.linears[size_t(moe::expert_linear(5, moe::Gate))].fuse_group,
            d.linears[size_t(moe::expert_linear(4, moe::Gate))].fuse_group);
  const LinearDesc& sgate = d.linears[size_t(moe::shared_linear(8, 3))];
  EXPECT_EQ(sgate.module, "mlp.shared_expert_gate");
  EXPECT_EQ(sgate.out, 1);
  EXPECT_TRUE(sgate.keep_16bit);
  EXPECT_EQ(d.linears[size_t(moe::shared_linear(8, moe::Down))].in, 96);

  nlohmann::json mx = qwen3_moe_config();
  mx["architectures"] = {"MixtralForCausalLM"};
  mx["num_local_experts"] = 8;
  const BlockDesc dm = describe_block(parse_hf_config(mx.dump(), "config.json"), 0);
  ASSERT_EQ(dm.count(), 4 + 1 + 3 * 8);
  EXPECT_EQ(dm.linears[moe::kRouter].module, "block_sparse_moe.gate");
  EXPECT_EQ(dm.linears[size_t(moe::expert_linear(2, moe::Gate))].module, "block_sparse_moe.experts.2.w1");
  EXPECT_EQ(dm.linears[size_t(moe::expert_linear(2, moe::Up))].module, "block_sparse_moe.experts.2.w3");
  EXPECT_EQ(dm.linears[size_t(moe::expert_linear(2, moe::Down))].module, "block_sparse_moe.experts.2.w2");
}

// Routing of two tokens over four experts, worked by hand.
TEST(Moe, RoutingPicksTopKAndRenormalises) {
  MoeConfig m;
  m.n_experts = 4;
  m.n_used = 2;
  const at::Tensor logits = at::tensor({0.0f, 1.0f, 2.0f, 3.0f, 5.0f, 0.0f, 0.0f, 5.0f}).view({2, 4});
  // token 0: softmax(0,1,2,3) = e^i / Σ; top-2 = experts 3, 2.
  const double z0 = 1 + std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  MoeRouting r = route_tokens(m, logits);
  EXPECT_EQ(r.expert[0][0].item<int64_t>(), 3);
  EXPECT_EQ(r.expert[0][1].item<int64_t>(), 2);
  EXPECT_NEAR(r.weight[0][0].item<float>(), std::exp(3.0) / z0, 1e-6);
  EXPECT_NEAR(r.weight[0][1].item<float>(), std::exp(2.0) / z0, 1e-6);
  // token 1: experts 0 and 3 tie at 5; each has e^5 / (2e^5 + 2).
  std::set<int64_t> t1 = {r.expert[1][0].item<int64_t>(), r.expert[1][1].item<int64_t>()};
  EXPECT_EQ(t1, (std::set<int64_t>{0, 3}));
  EXPECT_NEAR(r.weight[1][0].item<float>(), std::exp(5.0) / (2 * std::exp(5.0) + 2), 1e-6);
  // Renormalised, the kept weights sum to one: e/(1+e) and 1/(1+e) for token 0.
  m.norm_topk_prob = true;
  r = route_tokens(m, logits);
  EXPECT_NEAR(r.weight[0][0].item<float>(), std::exp(1.0) / (1 + std::exp(1.0)), 1e-6);
  EXPECT_NEAR(r.weight[0][1].item<float>(), 1 / (1 + std::exp(1.0)), 1e-6);
  EXPECT_NEAR(r.weight[1][0].item<float>(), 0.5, 1e-6);
}

// The feed-forward of one token, written as the reference implementations loop it.
at::Tensor reference_moe_token(const ModelConfig& c, const BlockWeights& w, const at::Tensor& x) {
  auto mlp = [&](int g) {
    return at::matmul(w.w[size_t(g) + 2], at::silu(at::matmul(w.w[size_t(g)], x)) * at::matmul(w.w[size_t(g) + 1], x));
  };
  auto probs = at::softmax(at::matmul(w.w[moe::kRouter], x), 0);
  auto [val, idx] = at::topk(probs, c.moe.n_used);
  if (c.moe.norm_topk_prob) val = val / val.sum();
  at::Tensor y = at::zeros_like(x);
  for (int64_t j = 0; j < c.moe.n_used; ++j)
    y = y + val[j] * mlp(moe::expert_linear(idx[j].item<int64_t>(), moe::Gate));
  if (c.moe.shared_intermediate > 0) {
    const int g = moe::shared_linear(c.moe.n_experts, moe::Gate);
    y = y + at::sigmoid(at::matmul(w.w[size_t(g) + 3], x)) * mlp(g);
  }
  return y;
}

TEST(Moe, BatchedExpertsEqualThePerTokenReference) {
  for (const char* arch : kMoeArchs) {
    test::TempDir dir;
    auto m = Model::open(test::write_random_hf_model(dir.path(), moe_spec(arch, 6)));
    const ModelConfig& c = m->config();
    const BlockWeights w = m->load_block(1);
    const at::Tensor x = at::randn({3, 7, c.hidden});
    const at::Tensor y = moe_ffn(c, w, x);
    ASSERT_EQ(y.sizes(), x.sizes());
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t t = 0; t < 7; ++t) {
        const at::Tensor ref = reference_moe_token(c, w, x[b][t]);
        EXPECT_TRUE(at::allclose(y[b][t], ref, 1e-5, 1e-6)) << arch << " token " << b << "," << t << ": max diff "
                                                            << (y[b][t] - ref).abs().max().item<float>();
      }
  }
}

// An expert the router never selects is not computed: the hook never sees its linears.
TEST(Moe, ExpertWithoutTokensIsSkipped) {
  test::TempDir dir;
  auto m = Model::open(test::write_random_hf_model(dir.path(), moe_spec("Qwen3MoeForCausalLM", 4)));
  const ModelConfig& c = m->config();
  BlockWeights w = m->load_block(0);
  w.w[moe::kRouter][0].fill_(0);
  w.w[moe::kRouter][0][0] = -1e4;  // expert 0's logit is hugely negative for x with x[0] > 0
  at::Tensor x = at::randn({2, 5, c.hidden});
  x.select(2, 0).fill_(1.0);
  std::map<int, int64_t> rows;
  moe_ffn(c, w, x, [&](int i, const at::Tensor& in) {
    rows[i] += in.size(0);
    return in;
  });
  EXPECT_EQ(rows.count(moe::expert_linear(0, moe::Gate)), 0u);
  EXPECT_EQ(rows.count(moe::expert_linear(0, moe::Down)), 0u);
  EXPECT_EQ(rows[moe::kRouter], 10);
  int64_t routed = 0;
  for (int64_t e = 1; e < 4; ++e) {
    EXPECT_EQ(rows[moe::expert_linear(e, moe::Gate)], rows[moe::expert_linear(e, moe::Down)]);
    routed += rows[moe::expert_linear(e, moe::Gate)];
  }
  EXPECT_EQ(routed, 10 * c.moe.n_used);  // every token reaches k experts
}

TEST(Moe, EveryFamilyLoadsAndRuns) {
  for (const char* arch : kMoeArchs) {
    test::TempDir dir;
    test::RandomModelSpec s = moe_spec(arch);
    s.dtype = "BF16";
    s.shards = 3;
    auto m = Model::open(test::write_random_hf_model(dir.path(), s));
    EXPECT_TRUE(m->config().is_moe());
    const int64_t per_block = 4 + 1 + 3 * 4 + (std::string(arch) == "Qwen2MoeForCausalLM" ? 4 : 0);
    EXPECT_EQ(int64_t(m->linears().size()), 2 * per_block + 1) << arch;
    auto logits = m->forward(at::randint(0, s.vocab, {2, 9}, at::kLong));
    EXPECT_EQ(logits.sizes(), at::IntArrayRef({2, 9, s.vocab}));
    EXPECT_TRUE(logits.isfinite().all().item<bool>()) << arch;
  }
}

// Rewrites one tensor of a single-file random model (or drops it when `t` is undefined).
void replace_tensor(const std::string& dir, const std::string& name, const at::Tensor& t) {
  const std::string file = dir + "/model.safetensors";
  std::vector<std::pair<std::string, at::Tensor>> all;
  bool found = false;
  for (auto& [n, x] : load_tensors(file)) {
    found |= n == name;
    if (n != name) all.emplace_back(n, x.clone());
    else if (t.defined()) all.emplace_back(n, t);
  }
  if (!found && t.defined()) all.emplace_back(name, t);
  save_tensors(file, all);
}

TEST(Moe, MissingOrMisshapedExpertsNameTheTensor) {
  test::TempDir dir;
  const std::string path = test::write_random_hf_model(dir.path(), moe_spec("Qwen3MoeForCausalLM"));
  replace_tensor(path, "model.layers.1.mlp.experts.3.up_proj.weight", at::Tensor());
  std::string e = error_of([&] { Model::open(path); });
  EXPECT_NE(e.find("model.layers.1.mlp.experts.3.up_proj.weight' is missing"), std::string::npos) << e;

  replace_tensor(path, "model.layers.1.mlp.experts.3.up_proj.weight", at::zeros({47, 64}));
  e = error_of([&] { Model::open(path); });
  EXPECT_NE(e.find("model.layers.1.mlp.experts.3.up_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("should have shape [48, 64]"), std::string::npos) << e;

  // An expert past num_experts: the config and the tensors disagree.
  replace_tensor(path, "model.layers.1.mlp.experts.3.up_proj.weight", at::zeros({48, 64}));
  replace_tensor(path, "model.layers.0.mlp.experts.4.up_proj.weight", at::zeros({48, 64}));
  e = error_of([&] { Model::open(path); });
  EXPECT_NE(e.find("unexpected tensor 'model.layers.0.mlp.experts.4.up_proj.weight'"), std::string::npos) << e;
}

}  // namespace
}  // namespace sr

namespace sr {
namespace {

// A random Qwen2-MoE (shared expert included) with the demo model's tokenizer, quantized by the
// CLI: RTN keeps the routers and quantizes every expert; SignRoundV2 records the tokens each
// expert received and exports auto_round that loads back to the fake-quant model's logits.
TEST(MoeCli, QuantizeKeepsRoutersAndRecordsExpertTokens) {
  test::TempDir dir;
  test::RandomModelSpec s = moe_spec("Qwen2MoeForCausalLM", 4);
  s.vocab = 1024;
  s.intermediate = 64;
  s.shared_intermediate = 64;
  const std::string src = test::write_random_hf_model(dir / "src", s);
  fs::copy_file(test::repo("demo/tinystories-llama-4m/tokenizer.model"), src + "/tokenizer.model");
  auto info = test::run_command(test::cli() + " inspect --json --model " + src);
  ASSERT_EQ(info.exit_code, 0) << info.err;
  const auto moe = nlohmann::json::parse(info.out)["moe"];
  EXPECT_EQ(moe["experts"], 4);
  EXPECT_EQ(moe["experts_per_token"], 2);
  // Total less the (4 - 2) experts a token skips in each of the 2 blocks, 3 matrices of 64 x 64.
  EXPECT_EQ(moe["active_parameters"].get<int64_t>(),
            nlohmann::json::parse(info.out)["parameters"].get<int64_t>() - 2 * 2 * 3 * 64 * 64);
  const std::string base = test::cli() + " quantize --threads 2 --quiet --json --model " + src + " --dataset " +
                           test::repo("demo/calib.txt") + " --nsamples 8 --seqlen 32 --batch-size 4 ";
  auto rtn = test::run_command(base + "--iters 0 --disable-opt-rtn --scheme W4A16 --group-size 32 --output-dir " + (dir / "rtn"));
  ASSERT_EQ(rtn.exit_code, 0) << rtn.err;
  auto q = Model::open(dir / "rtn"), fp = Model::open(src);
  const BlockWeights wq = q->load_block(1), wf = fp->load_block(1);
  EXPECT_TRUE(at::equal(wq.w[moe::kRouter], wf.w[moe::kRouter]));  // routers stay 16-bit (here F32)
  const int sgate = moe::shared_linear(4, 3);
  EXPECT_TRUE(at::equal(wq.w[size_t(sgate)], wf.w[size_t(sgate)]));
  for (int64_t e = 0; e < 4; ++e)
    for (int p : {moe::Gate, moe::Up, moe::Down}) {
      const at::Tensor a = wq.w[size_t(moe::expert_linear(e, moe::Proj(p)))], b = wf.w[size_t(moe::expert_linear(e, moe::Proj(p)))];
      EXPECT_FALSE(at::equal(a, b)) << "expert " << e << " projection " << p << " was not quantized";
      // W4A16 with groups of 32: at most 16 levels in a group.
      EXPECT_LE(std::get<0>(at::_unique(a[0].narrow(0, 0, 32))).numel(), 16);
    }

  auto v2 = test::run_command(base + "--iters 4 --format fake,auto_round --scheme W4A16 --group-size 32 --output-dir " + (dir / "v2"));
  ASSERT_EQ(v2.exit_code, 0) << v2.err;
  const auto record = nlohmann::json::parse(v2.out);
  ASSERT_TRUE(record.contains("units")) << v2.out.substr(0, 400);
  for (const auto& u : record["units"]) {
    ASSERT_TRUE(u.contains("expert_tokens")) << u.dump();
    for (const auto& [block, counts] : u["expert_tokens"].items()) {
      ASSERT_EQ(counts.size(), 4u);
      int64_t sum = 0;
      for (const auto& n : counts) sum += n.get<int64_t>();
      EXPECT_EQ(sum, 8 * 32 * s.experts_used) << "block " << block;  // every token reaches k experts
    }
  }
  std::vector<std::string> outs;
  for (const auto& e : fs::directory_iterator(dir / "v2")) if (e.is_directory()) outs.push_back(e.path().string());
  ASSERT_EQ(outs.size(), 2u) << v2.err;
  const at::Tensor tokens = at::randint(3, 1024, {1, 24}, at::kLong);
  const at::Tensor a = Model::open(outs[0])->forward(tokens), b = Model::open(outs[1])->forward(tokens);
  EXPECT_TRUE(at::allclose(a, b, 1e-4, 1e-4)) << outs[0] << " vs " << outs[1] << ": " << (a - b).abs().max().item<float>();
}

}  // namespace
}  // namespace sr

#include "export/gguf_from_model.h"
#include "export/gguf_target.h"
#include "io/gguf_reader.h"
#include "gguf_compare.h"

namespace sr {
namespace {

ModelConfig mixtral_config(int64_t experts, int64_t layers = 8) {
  nlohmann::json j = qwen3_moe_config();
  j["architectures"] = {"MixtralForCausalLM"};
  j["num_local_experts"] = experts;
  j["num_hidden_layers"] = layers;
  j["intermediate_size"] = 256;
  j["hidden_size"] = 256;  // whole 256-blocks per row: the rules, not the fallbacks, decide
  return parse_hf_config(j.dump(), "config.json");
}

GgmlType planned(const std::vector<GgufTensorPlan>& plan, const std::string& name) {
  for (const GgufTensorPlan& t : plan)
    if (t.name == name) return t.type;
  ADD_FAILURE() << "no tensor " << name;
  return GgmlType::F32;
}

// llama.cpp's stacked layout and its 8-expert rules (llama-quant.cpp, c392e50).
TEST(MoeGguf, PlanStacksExpertsAndAppliesTheEightExpertRules) {
  GgufPlanOptions quiet;
  quiet.log = false;
  const std::vector<GgufTensorPlan> p8 = plan_gguf_types(mixtral_config(8), GgufMix::Q4_K_M, quiet);
  for (const GgufTensorPlan& t : p8)
    if (t.name == "blk.0.ffn_down_exps.weight") EXPECT_EQ(t.shape, (std::vector<int64_t>{8, 256, 256}));
  EXPECT_EQ(planned(p8, "blk.0.ffn_gate_inp.weight"), GgmlType::F32);  // the router is never quantized
  EXPECT_EQ(planned(p8, "blk.5.attn_k.weight"), GgmlType::Q8_0);
  EXPECT_EQ(planned(p8, "blk.5.attn_v.weight"), GgmlType::Q8_0);
  EXPECT_EQ(planned(p8, "blk.5.attn_output.weight"), GgmlType::Q5_K);
  EXPECT_EQ(planned(p8, "blk.5.attn_q.weight"), GgmlType::Q4_K);
  EXPECT_EQ(planned(p8, "blk.0.ffn_down_exps.weight"), GgmlType::Q6_K);  // use_more_bits(0, 8)
  EXPECT_EQ(planned(p8, "blk.3.ffn_down_exps.weight"), GgmlType::Q6_K);  // (3 - 8/8) % 3 == 2
  EXPECT_EQ(planned(p8, "blk.4.ffn_down_exps.weight"), GgmlType::Q4_K);
  EXPECT_EQ(planned(p8, "blk.4.ffn_gate_exps.weight"), GgmlType::Q4_K);
  // Not 8 experts: the dense rules (q2_k: attn_output Q3_K, attn_v Q3_K with GQA 2).
  const std::vector<GgufTensorPlan> p4 = plan_gguf_types(mixtral_config(4), GgufMix::Q2_K, quiet);
  EXPECT_EQ(planned(p4, "blk.1.attn_output.weight"), GgmlType::Q3_K);
  EXPECT_EQ(planned(p4, "blk.1.attn_v.weight"), GgmlType::Q3_K);
  EXPECT_EQ(planned(p4, "blk.1.attn_k.weight"), GgmlType::Q2_K);
  EXPECT_EQ(planned(p4, "blk.1.ffn_down_exps.weight"), GgmlType::Q3_K);
  // Qwen3-MoE is its own architecture (qwen3moe): q/k norms beside the stacked experts.
  std::set<std::string> q3;
  for (const GgufTensorPlan& t : gguf_tensor_list(parse_hf_config(qwen3_moe_config().dump(), "c")))
    if (t.name.rfind("blk.0.", 0) == 0) q3.insert(t.name.substr(6));
  EXPECT_TRUE(q3.count("attn_q_norm.weight") && q3.count("ffn_up_exps.weight")) << q3.size();
}

std::string write_mixtral(const std::string& dir, int64_t experts) {
  test::RandomModelSpec s = moe_spec("MixtralForCausalLM", experts);
  s.vocab = 1024;
  s.hidden = 256;  // rows of whole 256-blocks: no k-quant fallback (ours differs from llama.cpp's iq4_nl there)
  s.intermediate = 256;
  s.layers = 4;
  const std::string src = test::write_random_hf_model(dir, s);
  fs::copy_file(test::repo("demo/tinystories-llama-4m/tokenizer.model"), src + "/tokenizer.model");
  return src;
}

// The GGUF that quantize writes for a Mixtral, against llama-quantize on the F32 GGUF of the
// same weights: RTN must give the same tensors byte for byte (types, shapes, stacked experts).
TEST(MoeGguf, RtnFileEqualsLlamaQuantizeByteForByte) {
  SR_REQUIRE_SHARED("tools/llama.cpp/bin/llama-quantize");
  test::TempDir dir;
  const std::string src = write_mixtral(dir / "mx", 8);
  GgufModelExportOptions o;
  o.progress = false;
  o.plan.log = false;
  export_gguf(*Model::open(src), dir / "f32.gguf", GgufMix::F32, o);
  for (const char* mix : {"q4_k_m", "q2_k", "q3_k_m"}) {
    std::string upper = mix;
    for (char& ch : upper) ch = char(std::toupper(ch));
    auto lq = test::run_command(test::shared("tools/llama.cpp/bin/llama-quantize") + " " + (dir / "f32.gguf") + " " +
                                (dir / "theirs.gguf") + " " + upper + " 2");
    ASSERT_EQ(lq.exit_code, 0) << lq.err;
    auto q = test::run_command(test::cli() + " quantize --threads 2 --quiet --overwrite --iters 0 --disable-opt-rtn "
                               "--model " + src + " --format gguf:" + mix + " --output-dir " + (dir / "ours.gguf"));
    ASSERT_EQ(q.exit_code, 0) << q.err;
    GgufReader ours(dir / "ours.gguf"), theirs(dir / "theirs.gguf");
    EXPECT_EQ(ours.get<uint32_t>("llama.expert_count"), 8u);
    EXPECT_EQ(ours.get<uint32_t>("llama.expert_used_count"), 2u);
    SCOPED_TRACE(mix);
    test::expect_same_gguf_tensors(ours, theirs);
  }
}

// One GGUF tensor holds the experts of a projection: they need one type.
TEST(MoeGguf, ExpertsOfOneTensorWithDifferentTypesAreRefused) {
  test::TempDir dir;
  const std::string src = write_mixtral(dir / "mx", 4);
  std::ofstream(dir / "lc.json") << R"({"model.layers.2.block_sparse_moe.experts.1.w2": "gguf:q8_0"})";
  auto q = test::run_command(test::cli() + " quantize --threads 2 --quiet --iters 0 --disable-opt-rtn --model " + src +
                             " --format gguf:q4_k_m --layer-config " + (dir / "lc.json") + " --output-dir " +
                             (dir / "out.gguf"));
  EXPECT_NE(q.exit_code, 0);
  EXPECT_NE(q.err.find("the experts of blk.2.ffn_down_exps.weight are one GGUF tensor and need one type"),
            std::string::npos) << q.err;
  EXPECT_FALSE(fs::exists(dir / "out.gguf"));
  // The same override for every expert of that projection is one type: accepted.
  std::ofstream(dir / "lc.json") << R"({"model\\.layers\\.2\\.block_sparse_moe\\.experts\\.\\d+\\.w2": "gguf:q8_0"})";
  q = test::run_command(test::cli() + " quantize --threads 2 --quiet --iters 0 --disable-opt-rtn --model " + src +
                        " --format gguf:q4_k_m --layer-config " + (dir / "lc.json") + " --output-dir " + (dir / "out.gguf"));
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_EQ(ggml_type_name(GgufReader(dir / "out.gguf").tensor("blk.2.ffn_down_exps.weight").type),
            std::string("q8_0"));
}

}  // namespace
}  // namespace sr

namespace sr {
namespace {

// A Mixtral read back from GGUF (stacked experts sliced per expert) computes what its HF
// folder computes; GGUF in, GGUF out gives the file HF in gives.
TEST(MoeGguf, GgufForwardEqualsHfForwardAndGgufInputWorks) {
  test::TempDir dir;
  const std::string src = write_mixtral(dir / "mx", 4);
  GgufModelExportOptions o;
  o.progress = false;
  export_gguf(*Model::open(src), dir / "f32.gguf", GgufMix::F32, o);
  auto hf = Model::open(src), gg = Model::open(dir / "f32.gguf");
  EXPECT_TRUE(gg->config().is_moe());
  EXPECT_EQ(gg->config().moe.n_experts, 4);
  EXPECT_EQ(gg->config().moe.n_used, 2);
  EXPECT_EQ(gg->linears().size(), hf->linears().size());
  const at::Tensor tokens = at::randint(3, 1024, {2, 16}, at::kLong);
  const at::Tensor a = hf->forward(tokens), b = gg->forward(tokens);
  EXPECT_TRUE(at::allclose(a, b, 1e-5, 1e-5)) << (a - b).abs().max().item<float>();
  for (const auto& [in, out] : {std::pair(src, dir / "from_hf.gguf"), std::pair(dir / "f32.gguf", dir / "from_gguf.gguf")}) {
    auto q = test::run_command(test::cli() + " quantize --threads 2 --quiet --iters 0 --disable-opt-rtn --model " + in +
                               " --format gguf:q4_k_m --output-dir " + out);
    ASSERT_EQ(q.exit_code, 0) << q.err;
  }
  GgufReader x(dir / "from_hf.gguf"), y(dir / "from_gguf.gguf");
  ASSERT_EQ(x.tensors().size(), y.tensors().size());
  for (size_t i = 0; i < x.tensors().size(); ++i)
    EXPECT_EQ(std::memcmp(x.tensors()[i].data, y.tensors()[i].data, x.tensors()[i].nbytes), 0) << x.tensors()[i].name;
}

// Stacked expert tensors that disagree with the metadata name the tensor.
TEST(MoeGguf, BadExpertTensorsNameTheTensor) {
  test::TempDir dir;
  const std::string src = write_mixtral(dir / "mx", 4);
  auto m = Model::open(src);
  GgufModelExportOptions o;
  o.progress = false;
  o.file.extra_metadata = {{"llama.expert_count", GgufValue::scalar<uint32_t>(5)}};
  export_gguf(*m, dir / "e5.gguf", GgufMix::F32, o);
  std::string e = error_of([&] { Model::open(dir / "e5.gguf"); });
  EXPECT_NE(e.find("tensor 'blk.0.ffn_gate_inp.weight' [4, 256]"), std::string::npos) << e;  // the router comes first
  EXPECT_NE(e.find("should have shape [5, 256]"), std::string::npos) << e;
  o.file.extra_metadata = {{"llama.expert_used_count", GgufValue::scalar<uint32_t>(7)}};
  export_gguf(*m, dir / "k7.gguf", GgufMix::F32, o);
  e = error_of([&] { Model::open(dir / "k7.gguf"); });
  EXPECT_NE(e.find("num_experts_per_tok 7 must lie in [1, num_experts = 4]"), std::string::npos) << e;
}

}  // namespace
}  // namespace sr

#include "alloc/allocation.h"
#include "cli/flag_values.h"

namespace sr {
namespace {

// Mixed precision: the experts of one projection are one item where the format stores them as
// one tensor (GGUF) or one fused-MoE weight (fusion); each expert is its own item otherwise.
TEST(MoeAlloc, ExpertsOfOneProjectionAreOneItemForGgufAndFusion) {
  test::TempDir dir;
  auto m = Model::open(write_mixtral(dir / "mx", 4));
  const LayerPlan plan = make_layer_plan(*m, PlanOptions{preset_scheme("BF16"), "", false, {}});
  // 4 blocks: q, k, v, o and 4 experts x 3 projections are candidates; the routers are fixed.
  const AllocProblem gguf = make_alloc_problem(plan, cli::parse_alloc_options("gguf:q4_k,gguf:q8_0"), FusePolicy::Auto, false);
  ASSERT_EQ(gguf.layers.size(), 4u * (4 + 12));
  EXPECT_EQ(gguf.items.size(), 4u * (4 + 3));
  for (const auto& item : gguf.items) {
    std::set<std::string> stems;
    for (size_t i : item) stems.insert(plan.blocks[gguf.layers[i].block].linears[size_t(gguf.layers[i].linear)].gguf);
    EXPECT_EQ(stems.size(), 1u);  // one tensor per item
    if (stems.count("ffn_down_exps")) {
      EXPECT_EQ(item.size(), 4u);
      EXPECT_EQ(gguf.item_cost(gguf.items.size() - 1, 0), 4 * gguf.cost[item[0]][0]);  // costs add up
    }
  }
  const auto mx = cli::parse_alloc_options("MXFP4,MXFP8");
  EXPECT_EQ(make_alloc_problem(plan, mx, FusePolicy::Off, false).items.size(), 4u * (4 + 12));
  EXPECT_EQ(make_alloc_problem(plan, mx, FusePolicy::On, false).items.size(), 4u * (2 + 2));  // qkv, o, w13, w2
}

}  // namespace
}  // namespace sr
