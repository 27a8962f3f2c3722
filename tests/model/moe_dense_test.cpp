// Dense MLP blocks inside Qwen-MoE models (decoder_sparse_step, mlp_only_layers): which blocks
// are dense, their description, a forward that equals a dense model's where the MoE blocks are
// built to compute the dense MLP, tuning and the safetensors exports of a mixed model, imatrix
// names both ways, and the GGUF writer's refusal (llama.cpp's MoE architectures have no dense
// block).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "export/gguf_plan.h"
#include "io/imatrix_file.h"
#include "model/model.h"
#include "model/tensor_convert.h"
#include "random_model.h"
#include "testutil.h"
#include "tune/imatrix.h"

namespace sr {
namespace {
namespace fs = std::filesystem;
using test::error_of;

// 4 blocks, decoder_sparse_step 2 and mlp_only_layers [0]: block 0 dense (listed), 1 sparse,
// 2 dense ((2 + 1) % 2 != 0), 3 sparse. Dense MLPs 96 wide, experts 32 (both pack into INT
// exports' 32-bit words).
test::RandomModelSpec mixed_spec(const std::string& arch = "Qwen3MoeForCausalLM") {
  test::RandomModelSpec s;
  s.arch = arch;
  s.layers = 4;
  s.experts = 4;
  s.experts_used = 2;
  s.intermediate = 32;
  s.dense_intermediate = 96;
  s.shared_intermediate = 32;
  s.sparse_step = 2;
  s.mlp_only_layers = {0};
  return s;
}

TEST(MoeDense, ConfigNamesTheDenseBlocksAsTransformersDoes) {
  nlohmann::json j = {{"architectures", {"Qwen2MoeForCausalLM"}}, {"hidden_size", 64}, {"intermediate_size", 96},
                      {"num_hidden_layers", 6}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                      {"vocab_size", 96}, {"num_experts", 4}, {"num_experts_per_tok", 2},
                      {"moe_intermediate_size", 32}, {"shared_expert_intermediate_size", 16},
                      {"decoder_sparse_step", 3}, {"mlp_only_layers", {5, 1}}};
  const ModelConfig c = parse_hf_config(j.dump(), "config.json");
  // sparse iff not listed and (i + 1) % 3 == 0: blocks 2 only (5 is listed).
  const std::vector<bool> sparse = {false, false, true, false, false, false};
  for (int64_t b = 0; b < 6; ++b) EXPECT_EQ(c.sparse_block(b), sparse[size_t(b)]) << b;
  EXPECT_TRUE(c.has_dense_blocks());
  const BlockDescs d = describe_blocks(c);
  ASSERT_EQ(d.kinds.size(), 2u);
  EXPECT_EQ(d[0].count(), 7);  // the Llama block, MLP intermediate_size wide
  EXPECT_EQ(d[0].linears[size_t(llama::Gate)].module, "mlp.gate_proj");
  EXPECT_EQ(d[0].linears[size_t(llama::Gate)].out, 96);
  EXPECT_EQ(d[0].linears[size_t(llama::Down)].in, 96);
  EXPECT_EQ(d[2].count(), 4 + 1 + 3 * 4 + 4);
  EXPECT_EQ(d[2].linears[size_t(moe::expert_linear(0, moe::Gate))].out, 32);
  EXPECT_EQ(&d.widest(), &d[2]);
  EXPECT_NE(error_of([&] { (void)d[6]; }).find("block 6 out of range [0, 6)"), std::string::npos);

  j.erase("decoder_sparse_step");
  j.erase("mlp_only_layers");
  const ModelConfig all = parse_hf_config(j.dump(), "config.json");
  EXPECT_FALSE(all.has_dense_blocks());
  EXPECT_TRUE(all.moe.dense_blocks.empty());
  EXPECT_EQ(describe_blocks(all).kinds.size(), 1u);
}

// A dense Qwen3 model, and the same model as a Qwen3-MoE whose sparse blocks compute the dense
// MLP: 2 experts, each one half of the MLP's intermediate rows with its down projection doubled,
// a zero router (both experts, weight 1/2 each). Dense blocks copy the MLP (96 wide), experts
// are 48 wide: loading needs the right width per block, the forward the right feed-forward.
TEST(MoeDense, ForwardEqualsTheDenseModelItWasBuiltFrom) {
  test::TempDir dir;
  test::RandomModelSpec ds;
  ds.arch = "Qwen3ForCausalLM";
  ds.layers = 4;
  ds.intermediate = 96;
  const std::string dense = test::write_random_hf_model(dir / "dense", ds);
  fs::create_directories(dir / "moe");
  nlohmann::json cfg = nlohmann::json::parse(std::ifstream(dense + "/config.json"));
  cfg["architectures"] = {"Qwen3MoeForCausalLM"};
  cfg.update({{"num_experts", 2}, {"num_experts_per_tok", 2}, {"moe_intermediate_size", 48},
              {"norm_topk_prob", false}, {"decoder_sparse_step", 2}, {"mlp_only_layers", {0}}});
  std::ofstream(dir / "moe/config.json") << cfg.dump();
  std::map<std::string, at::Tensor> t;
  for (auto& [n, x] : load_tensors(dense + "/model.safetensors")) t[n] = x;
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (auto& [n, x] : t) {
    const bool sparse_mlp = n.find(".mlp.") != std::string::npos &&
                            (n.rfind("model.layers.1.", 0) == 0 || n.rfind("model.layers.3.", 0) == 0);
    if (!sparse_mlp) out.emplace_back(n, x);
  }
  for (const int64_t b : {1, 3}) {
    const std::string p = "model.layers." + std::to_string(b) + ".mlp.";
    out.emplace_back(p + "gate.weight", at::zeros({2, 64}));
    for (int64_t e = 0; e < 2; ++e) {
      const std::string x = p + "experts." + std::to_string(e) + ".";
      out.emplace_back(x + "gate_proj.weight", t.at(p + "gate_proj.weight").narrow(0, 48 * e, 48).clone());
      out.emplace_back(x + "up_proj.weight", t.at(p + "up_proj.weight").narrow(0, 48 * e, 48).clone());
      out.emplace_back(x + "down_proj.weight", 2.0 * t.at(p + "down_proj.weight").narrow(1, 48 * e, 48));
    }
  }
  save_tensors(dir / "moe/model.safetensors", out);
  auto md = Model::open(dense), mm = Model::open(dir / "moe");
  EXPECT_EQ(mm->block_desc(0).count(), 7);
  EXPECT_EQ(mm->block_desc(1).count(), 4 + 1 + 3 * 2);
  EXPECT_EQ(mm->block_desc(2).count(), 7);
  const at::Tensor tokens = at::randint(0, ds.vocab, {2, 11}, at::kLong);
  const at::Tensor a = md->forward(tokens), b = mm->forward(tokens);
  EXPECT_TRUE(at::allclose(a, b, 1e-5, 1e-5)) << (a - b).abs().max().item<float>();
  // The check can fail: one expert's half alone is not the MLP.
  out.back().second = at::zeros_like(out.back().second);
  save_tensors(dir / "moe/model.safetensors", out);
  EXPECT_FALSE(at::allclose(a, Model::open(dir / "moe")->forward(tokens), 1e-3, 1e-3));
}

TEST(MoeDense, MissingOrMisshapedDenseMlpNamesTheTensor) {
  test::TempDir dir;
  const std::string path = test::write_random_hf_model(dir / "m", mixed_spec());
  std::vector<std::pair<std::string, at::Tensor>> all;
  for (auto& [n, x] : load_tensors(path + "/model.safetensors"))
    all.emplace_back(n, n == "model.layers.2.mlp.up_proj.weight" ? at::zeros({32, 64}) : x);
  save_tensors(path + "/model.safetensors", all);
  const std::string e = error_of([&] { Model::open(path); });
  EXPECT_NE(e.find("model.layers.2.mlp.up_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("should have shape [96, 64]"), std::string::npos) << e;
}

TEST(MoeDense, ImatrixNamesOfDenseAndSparseBlocksRoundTrip) {
  const ModelConfig c = [] {
    test::TempDir dir;
    return Model::open(test::write_random_hf_model(dir / "m", mixed_spec()))->config();
  }();
  const BlockDescs d = describe_blocks(c);
  Importances im;
  im["model.layers.0.mlp.gate_proj"] = {at::arange(64, at::kFloat), 10};
  im["model.layers.2.mlp.down_proj"] = {at::arange(96, at::kFloat), 10};
  im["model.layers.1.mlp.experts.2.up_proj"] = {at::ones({64}), 7};
  const ImatrixFile f = imatrix_file_of(im, c, d);
  ASSERT_TRUE(f.entries.count("blk.0.ffn_gate.weight"));
  ASSERT_TRUE(f.entries.count("blk.2.ffn_down.weight"));
  ASSERT_TRUE(f.entries.count("blk.1.ffn_up_exps.weight"));
  EXPECT_EQ(f.entries.at("blk.1.ffn_up_exps.weight").sums.size(), 4u * 64u);  // 4 experts' 64 inputs
  const Importances back = importances_from_file(f, "x.imatrix", c, d);
  EXPECT_TRUE(at::equal(back.at("model.layers.2.mlp.down_proj").sum_sq, im["model.layers.2.mlp.down_proj"].sum_sq));
  EXPECT_TRUE(at::equal(back.at("model.layers.1.mlp.experts.2.up_proj").sum_sq, at::ones({64})));
  // A dense block has no stacked experts, a sparse one no dense MLP.
  ImatrixFile bad = f;
  bad.entries["blk.2.ffn_up_exps.weight"] = f.entries.at("blk.1.ffn_up_exps.weight");
  EXPECT_NE(error_of([&] { importances_from_file(bad, "x.imatrix", c, d); }).find("blk.2.ffn_up_exps.weight is not a linear"),
            std::string::npos);
}

TEST(MoeDense, GgufRefusesDenseBlocksNamingTheBlockAndTheField) {
  test::TempDir dir;
  for (const char* arch : {"Qwen3MoeForCausalLM", "Qwen2MoeForCausalLM"}) {
    const ModelConfig c = Model::open(test::write_random_hf_model(dir / arch, mixed_spec(arch)))->config();
    const std::string e = error_of([&] { gguf_tensor_list(c); });
    EXPECT_NE(e.find("block 0 is a dense MLP (config decoder_sparse_step 2)"), std::string::npos) << e;
    EXPECT_NE(e.find(std::string(arch == std::string("Qwen3MoeForCausalLM") ? "'qwen3moe'" : "'qwen2moe'")),
              std::string::npos) << e;
    ModelConfig c2 = c;  // decoder_sparse_step 1, mlp_only_layers [2]
    c2.moe.sparse_step = 1;
    c2.moe.dense_blocks = {false, false, true, false};
    const std::string e2 = error_of([&] { gguf_tensor_list(c2); });
    EXPECT_NE(e2.find("block 2 is a dense MLP (config mlp_only_layers)"), std::string::npos) << e2;
  }
}

}  // namespace
}  // namespace sr

namespace sr {
namespace {

// The CLI on a random mixed Qwen2-MoE (shared expert too) with the demo tokenizer: inspect counts
// the dense blocks' MLPs as active; SignRoundV2 tunes the dense MLPs and the experts, records
// expert tokens for the sparse blocks only, and its auto_round and auto_gptq folders load back to
// the fake-quant model's logits; --save_imatrix names both kinds; GGUF is refused before tuning.
TEST(MoeDenseCli, QuantizeTunesDenseAndSparseBlocksAndExports) {
  test::TempDir dir;
  test::RandomModelSpec s = mixed_spec("Qwen2MoeForCausalLM");
  s.vocab = 1024;
  s.hidden = 64;
  const std::string src = test::write_random_hf_model(dir / "src", s);
  fs::copy_file(test::repo("demo/tinystories-llama-4m/tokenizer.model"), src + "/tokenizer.model");
  auto info = test::run_command(test::cli() + " inspect --json --model " + src);
  ASSERT_EQ(info.exit_code, 0) << info.err;
  const auto j = nlohmann::json::parse(info.out);
  // Total less the (4 - 2) experts a token skips in the 2 sparse blocks, 3 matrices of 32 x 64.
  EXPECT_EQ(j["moe"]["active_parameters"].get<int64_t>(), j["parameters"].get<int64_t>() - 2 * 2 * 3 * 32 * 64);
  EXPECT_EQ(j["moe"]["dense_blocks"], nlohmann::json({0, 2}));

  const std::string base = test::cli() + " quantize --threads 2 --quiet --json --model " + src + " --dataset " +
                           test::repo("demo/calib.txt") + " --nsamples 8 --seqlen 32 --batch-size 4 ";
  auto gguf = test::run_command(base + "--iters 0 --format gguf:q4_k_m --output-dir " + (dir / "gguf"));
  EXPECT_NE(gguf.exit_code, 0);
  EXPECT_NE(gguf.err.find("block 0 is a dense MLP (config decoder_sparse_step 2)"), std::string::npos) << gguf.err;

  auto v2 = test::run_command(base + "--iters 4 --format fake,auto_round,auto_gptq --scheme W4A16 --group-size 32 "
                              "--save_imatrix " + (dir / "im.gguf") + " --output-dir " + (dir / "v2"));
  ASSERT_EQ(v2.exit_code, 0) << v2.err;
  const auto record = nlohmann::json::parse(v2.out);
  std::set<std::string> expert_blocks;
  for (const auto& u : record["units"])
    if (u.contains("expert_tokens"))
      for (const auto& [block, counts] : u["expert_tokens"].items()) expert_blocks.insert(block);
  EXPECT_EQ(expert_blocks, (std::set<std::string>{"1", "3"}));
  const ImatrixFile im = read_imatrix_file(dir / "im.gguf");
  EXPECT_TRUE(im.entries.count("blk.0.ffn_down.weight"));
  EXPECT_TRUE(im.entries.count("blk.3.ffn_gate_exps.weight"));
  EXPECT_TRUE(im.entries.count("blk.3.ffn_up_shexp.weight"));

  std::vector<std::string> outs;
  for (const auto& e : fs::directory_iterator(dir / "v2")) if (e.is_directory()) outs.push_back(e.path().string());
  ASSERT_EQ(outs.size(), 3u) << v2.err;
  auto fp = Model::open(src);
  const at::Tensor tokens = at::randint(3, 1024, {1, 24}, at::kLong);
  std::vector<at::Tensor> logits;
  for (const std::string& o : outs) {
    auto q = Model::open(o);
    for (const int64_t b : {0, 2}) {  // the dense MLPs were quantized: at most 16 levels in a group of 32
      const at::Tensor w = q->load_block(b).w[size_t(llama::Down)];
      EXPECT_FALSE(at::equal(w, fp->load_block(b).w[size_t(llama::Down)])) << o << " block " << b;
      EXPECT_LE(std::get<0>(at::_unique(w[0].narrow(0, 0, 32))).numel(), 16) << o;
    }
    logits.push_back(q->forward(tokens));
  }
  for (size_t i = 1; i < logits.size(); ++i)
    EXPECT_TRUE(at::allclose(logits[0], logits[i], 1e-4, 1e-4))
        << outs[0] << " vs " << outs[i] << ": " << (logits[0] - logits[i]).abs().max().item<float>();
  // Mixed precision: DeltaLoss scores the dense MLPs and the experts alike; the report's grid gets
  // a column for each label of either kind.
  auto as = test::run_command(test::cli() + " autoscheme --threads 2 --quiet --json --model " + src + " --dataset " +
                              test::repo("demo/calib.txt") + " --nsamples 4 --seqlen 32 --batch_size 2 --options "
                              "MXFP4,MXFP8 --avg_bits 6 --allocator deltaloss --score_cache none --output_dir " +
                              (dir / "as"));
  ASSERT_EQ(as.exit_code, 0) << as.err;
  std::map<std::string, std::string> proj;
  const auto as_json = nlohmann::json::parse(as.out);
  for (const auto& row : as_json["layers"]) proj[row["name"].get<std::string>()] = row["proj"].get<std::string>();
  EXPECT_EQ(proj["model.layers.2.mlp.down_proj"], "down");
  EXPECT_EQ(proj["model.layers.3.mlp.experts.1.up_proj"], "exp1.up");
  const std::string html = test::read_text(dir / "as/report.html");
  EXPECT_NE(html.find(">exp3.down<"), std::string::npos);
  EXPECT_NE(html.find(">gate<"), std::string::npos);
  auto ev = test::run_command(test::cli() + " eval --quiet --json --model " + outs[0] + " --text " +
                              test::repo("demo/calib.txt") + " --ctx 32 --chunks 2 --kld-base " + src);
  ASSERT_EQ(ev.exit_code, 0) << ev.err;
  EXPECT_GT(nlohmann::json::parse(ev.out)["kld"].get<double>(), 0.0) << ev.out;
}

}  // namespace
}  // namespace sr

namespace sr {
namespace {

// scripts/make_upcycled_moe.py with --noise 0: every expert is the source block's MLP and the two
// routing weights sum to one, so a sparse block computes exactly what the dense block the script
// keeps (--mlp-only-layers, --sparse-step) computes: both models give the same logits.
TEST(MoeDenseScript, UpcycledDenseBlocksKeepTheSourceMlp) {
  if (test::run_command("python3 --version").exit_code != 0) GTEST_SKIP() << "python3 not found";
  test::TempDir dir;
  const std::string script = "python3 " + test::repo("scripts/make_upcycled_moe.py") + " --experts 2 --noise 0 --layers 2 ";
  auto a = test::run_command(script + (dir / "sparse"));
  auto b = test::run_command(script + "--sparse-step 2 --mlp-only-layers 0 " + (dir / "mixed"));
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  auto ms = Model::open(dir / "sparse"), mm = Model::open(dir / "mixed");
  EXPECT_FALSE(ms->config().has_dense_blocks());
  EXPECT_EQ(mm->config().moe.dense_blocks, (std::vector<bool>{true, false}));
  EXPECT_EQ(mm->block_desc(0).linears[size_t(llama::Down)].module, "mlp.down_proj");
  const at::Tensor tokens = at::randint(3, ms->config().vocab, {1, 16}, at::kLong);
  const at::Tensor ls = ms->forward(tokens), lm = mm->forward(tokens);
  EXPECT_TRUE(at::allclose(ls, lm, 1e-4, 1e-4)) << (ls - lm).abs().max().item<float>();
  auto bad = test::run_command(script + "--arch mixtral --sparse-step 2 " + (dir / "x"));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("use --arch qwen3moe"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace sr
