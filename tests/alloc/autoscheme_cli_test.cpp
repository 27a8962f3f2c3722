// signround autoscheme and quantize --avg_bits end to end on the 4m demo model: the files it
// writes, that quantize reads the layer config back, the cache, and the error cases.
#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <cmath>
#include <map>
#include <random>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "io/imatrix_file.h"
#include "testutil.h"

namespace sr {
namespace {
namespace fs = std::filesystem;

std::string demo_model() { return test::repo("demo/tinystories-llama-4m"); }
std::string demo_text() { return test::repo("demo/stories.txt"); }

test::CommandResult autoscheme(const std::string& args) {
  return test::run_command(test::cli() + " autoscheme --threads 2 --quiet --model " + demo_model() + " --dataset " +
                           demo_text() + " --nsamples 4 --seqlen 64 --batch_size 2 " + args);
}

// quantize --avg_bits on the demo model: small DeltaLoss scoring, no score cache, then data-free RTN.
test::CommandResult quantize_avg_bits(const std::string& args) {
  return test::run_command(test::cli() + " quantize --threads 2 --quiet --model " + demo_model() + " --dataset " +
                           demo_text() + " --autoscheme_nsamples 4 --autoscheme_seqlen 64 --score_cache none "
                           "--iters 0 --disable_opt_rtn " + args);
}

TEST(AutoSchemeCli, WritesConfigsTableAndReport) {
  test::TempDir dir;
  // eval results for the curve: two budgets of one series.
  std::ofstream(dir / "evals.json") << R"([{"label": "deltaloss", "avg_bits": 4.5, "ppl": 8.0, "kld": 0.02},
                                          {"label": "deltaloss", "avg_bits": 5.0, "ppl": 7.9, "kld": 0.01}])";
  auto r = autoscheme("--options MXFP4,MXFP8 --avg_bits 4.5,5 --allocator deltaloss,head8,random --score_cache " +
                      (dir / "cache") + " --eval_results " + (dir / "evals.json") + " --output_dir " + (dir / "out") +
                      " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["layers"].size(), 28u);
  EXPECT_EQ(j["allocations"].size(), 6u);
  EXPECT_FALSE(j["weight_term"].get<bool>());  // MXFP4/MXFP8 quantize activations: §4.4 act term only
  for (const auto& a : j["allocations"]) {
    EXPECT_LE(a["avg_bits"].get<double>(), a["target_avg_bits"].get<double>() + 1e-12) << a.dump();
    const std::string f = dir / ("out/layer_config_" + a["name"].get<std::string>() + ".json");
    ASSERT_TRUE(fs::exists(f)) << f;
    EXPECT_EQ(nlohmann::json::parse(test::read_text(f))["layers"].size(), 28u);
  }
  for (const auto& row : j["layers"])
    for (const auto& o : row["options"]) EXPECT_GT(o["score"].get<double>(), 0.0) << row.dump();
  const std::string html = test::read_text(dir / "out/report.html");
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("perplexity"), std::string::npos);  // the curve is drawn
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);        // nothing loaded from elsewhere
  EXPECT_EQ(html.find("href="), std::string::npos);
  EXPECT_TRUE(fs::exists(dir / "out/autoscheme.json"));
  // A second run reuses the two cached option passes.
  auto again = test::run_command(test::cli() + " autoscheme --threads 2 --model " + demo_model() + " --dataset " +
                                 demo_text() + " --nsamples 4 --seqlen 64 --batch_size 2 --options MXFP4,MXFP8 "
                                 "--avg_bits 6 --score_cache " + (dir / "cache") + " --output_dir " + (dir / "out2"));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("from the cache"), std::string::npos) << again.err;
  EXPECT_NE(again.out.find("deltaloss_6"), std::string::npos) << again.out;
}

TEST(AutoSchemeCli, QuantizeWithAvgBitsUsesTheAllocation) {
  test::TempDir dir;
  auto r = quantize_avg_bits("--json --avg_bits 3 --options W2A16G64,W4A16 --output_dir " + (dir / "q"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rec = nlohmann::json::parse(r.out);
  ASSERT_TRUE(rec.contains("autoscheme")) << r.out;
  EXPECT_LE(rec["autoscheme"]["avg_bits"].get<double>(), 3.0);
  EXPECT_GT(rec["autoscheme"]["avg_bits"].get<double>(), 2.9);
  EXPECT_NEAR(rec["average_bits"].get<double>(), rec["autoscheme"]["avg_bits"].get<double>(), 1e-9);
  // 3 bits lies between W2A16G64 (2.281) and W4A16 (4.156): the model holds both.
  const auto q = nlohmann::json::parse(test::read_text(dir / "q/quantization.json"));
  ASSERT_EQ(q["layers"].size(), 28u);
  std::set<int> bits;
  for (const auto& [name, s] : q["layers"].items()) bits.insert(s["bits"].get<int>());
  EXPECT_EQ(bits, (std::set<int>{2, 4}));
  EXPECT_FALSE(fs::exists(dir / "q.partial"));
}

// A usage error found only after the allocation (GPTQ stores INT schemes, the allocation chose
// MXFP4 layers) still leaves neither the output nor a .partial folder behind.
TEST(AutoSchemeCli, QuantizeWithAvgBitsRefusedAfterScoringLeavesNothing) {
  test::TempDir dir;
  auto r = quantize_avg_bits("--avg_bits 5 --options MXFP4,W8A16 --format auto_gptq --output_dir " + (dir / "q"));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("MXFP4"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "q"));
  EXPECT_FALSE(fs::exists(dir / "q.partial"));
}

// GGUF types as options: the GGUF file stores each block tensor in the type the allocation chose.
TEST(AutoSchemeCli, GgufOptionsWriteTheChosenTypePerTensor) {
  test::TempDir dir;
  auto r = quantize_avg_bits("--json --format gguf:q3_k_m --avg_bits 3.5 --options gguf:q2_k,gguf:q3_k,gguf:q4_k "
                             "--output_dir " + (dir / "q"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rec = nlohmann::json::parse(test::read_text(dir / "q/signround_run.json"));
  EXPECT_LE(rec["autoscheme"]["avg_bits"].get<double>(), 3.5);
  auto inspect = test::run_command(test::cli() + " inspect --json --model " + (dir / "q/tinystories-llama-4m-Q3_K_M.gguf"));
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  std::map<std::string, std::string> stored;
  const auto info = nlohmann::json::parse(inspect.out);
  for (const auto& t : info["tensors"])
    stored[t["name"].get<std::string>()] = t["dtype"].get<std::string>();
  ASSERT_FALSE(stored.empty()) << inspect.out;
  const std::map<std::string, std::string> gguf_name = {
      {"self_attn.q_proj", "attn_q"}, {"self_attn.k_proj", "attn_k"}, {"self_attn.v_proj", "attn_v"},
      {"self_attn.o_proj", "attn_output"}, {"mlp.gate_proj", "ffn_gate"}, {"mlp.up_proj", "ffn_up"},
      {"mlp.down_proj", "ffn_down"}};
  std::set<std::string> types;
  for (const auto& [name, s] : rec["settings"]["layers"].items()) {
    // "model.layers.<b>.<proj>" -> "blk.<b>.<gguf proj>.weight"; "gguf:q2_k" -> "Q2_K"
    const size_t b0 = std::string("model.layers.").size(), dot = name.find('.', b0);
    const std::string tensor = "blk." + name.substr(b0, dot - b0) + "." + gguf_name.at(name.substr(dot + 1)) + ".weight";
    std::string type = s["data_type"].get<std::string>().substr(5);
    for (char& ch : type) ch = char(std::toupper(static_cast<unsigned char>(ch)));
    EXPECT_EQ(stored[tensor], type) << tensor;
    types.insert(type);
  }
  EXPECT_EQ(rec["settings"]["layers"].size(), 28u);
  EXPECT_GE(types.size(), 2u) << "3.5 bits lies between q2_k and q4_k: a mixed allocation";
}

TEST(AutoSchemeCli, RefineWithFileBitsRecordsTheMeasuredImprovement) {
  test::TempDir dir;
  auto r = autoscheme("--options gguf:q2_k,gguf:q3_k,gguf:q4_k --avg_bits 3.2 --bit_cost file --refine 2 "
                      "--measure_encoder opt_rtn --score_cache none --json --output_dir " + (dir / "out"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["bit_cost"], "file");
  ASSERT_EQ(j["allocations"].size(), 1u);
  const auto& a = j["allocations"][0];
  EXPECT_LE(a["avg_bits"].get<double>(), 3.2) << a.dump();           // file bits: Q2_K is 2.625
  EXPECT_GT(a["avg_bits"].get<double>(), 2.625) << a.dump();
  EXPECT_LE(a["measured_kld"].get<double>(), a["unrefined_kld"].get<double>()) << a.dump();
  EXPECT_GE(a["refine_evaluations"].get<int>(), 1 + 28 * 2) << a.dump();  // one round: every layer, 2 other types
  const auto cfg = nlohmann::json::parse(test::read_text(dir / "out/layer_config_deltaloss_3.2.json"));
  EXPECT_EQ(cfg["autoscheme"]["bit_cost"], "file");
}

TEST(AutoSchemeCli, ErrorsNameTheFlag) {
  test::TempDir dir;
  struct Case { std::string args, needle; };
  const std::vector<Case> cases = {
      {"--options MXFP4,MXFP8 --avg_bits 3 --output_dir " + (dir / "a"), "between 4.2500 and 8.2500"},
      {"--options MXFP4,MXFP8 --avg_bits 9 --output_dir " + (dir / "a"), "between 4.2500 and 8.2500"},
      {"--options MXFP4,MXFP8 --avg_bits abc --output_dir " + (dir / "a"), "--avg_bits"},
      {"--options MXFP4,NOPE --avg_bits 5 --output_dir " + (dir / "a"), "NOPE"},
      {"--options MXFP4,gguf:q4_k --avg_bits 5 --output_dir " + (dir / "a"), "gguf:q4_k"},
      {"--options MXFP4,MXFP8 --avg_bits 5 --allocator greedy --output_dir " + (dir / "a"), "--allocator"},
      {"--options MXFP4,MXFP8 --avg_bits 5 --fuse_groups maybe --output_dir " + (dir / "a"), "--fuse_groups"},
      {"--options MXFP4,MXFP8 --avg_bits 5 --nsamples 0 --output_dir " + (dir / "a"), "--nsamples"},
      {"--options MXFP4,MXFP8 --output_dir " + (dir / "a"), "--avg_bits"},
      {"--avg_bits 5 --output_dir " + (dir / "a"), "--options"},
      {"--options MXFP4,MXFP8 --avg_bits 5 --layer_config " + (dir / "missing.json") + " --output_dir " + (dir / "a"),
       "missing.json"},
      {"--options MXFP4,MXFP8 --avg_bits 5 --eval_results " + (dir / "missing.json") + " --output_dir " + (dir / "a"),
       "--eval_results"},
      {"--options MXFP4,MXFP8 --avg_bits 5 --refine -1 --output_dir " + (dir / "a"), "--refine"},
      {"--options MXFP4,MXFP8 --avg_bits 5 --measure_encoder gptq --output_dir " + (dir / "a"), "--measure_encoder"},
      {"--options MXFP4,MXFP8 --avg_bits 5 --bit_cost bytes --output_dir " + (dir / "a"), "--bit_cost"},
      {"--options gguf:q2_k,gguf:q4_k --avg_bits 3 --bit_cost file --ignore_scale_zp_bits --output_dir " + (dir / "a"),
       "--bit_cost"},
  };
  for (const Case& c : cases) {
    auto r = autoscheme(c.args);
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << c.args << "\n" << r.err;
  }
  auto no_data = test::run_command(test::cli() + " autoscheme --model " + demo_model() +
                                   " --options MXFP4,MXFP8 --avg_bits 5 --output_dir " + (dir / "a"));
  EXPECT_EQ(no_data.exit_code, 1);
  EXPECT_NE(no_data.err.find("--dataset"), std::string::npos) << no_data.err;
  // Baselines need no data.
  auto head = test::run_command(test::cli() + " autoscheme --quiet --model " + demo_model() +
                                " --options MXFP4,MXFP8 --avg_bits 5 --allocator head8 --output_dir " + (dir / "b"));
  EXPECT_EQ(head.exit_code, 0) << head.err;
  // quantize takes one target.
  auto q = test::run_command(test::cli() + " quantize --quiet --model " + demo_model() + " --dataset " + demo_text() +
                             " --options MXFP4,MXFP8 --avg_bits 5,6 --iters 0 --output_dir " + (dir / "q"));
  EXPECT_EQ(q.exit_code, 1);
  EXPECT_NE(q.err.find("one --avg_bits"), std::string::npos) << q.err;
}

}  // namespace
}  // namespace sr

namespace sr {
namespace {

// An imatrix file for the demo model (4 blocks; 256 inputs, 768 for ffn_down) with random Σx².
std::string demo_imatrix(const std::string& path, unsigned seed) {
  ImatrixFile f;
  f.chunk_count = 4;
  f.chunk_size = 64;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.1f, 200.0f);
  for (int b = 0; b < 4; ++b)
    for (const char* t : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}) {
      ImatrixEntry e;
      e.sums.resize(std::string(t) == "ffn_down" ? 768 : 256);
      for (float& x : e.sums) x = u(rng);
      e.counts = {256};
      f.entries["blk." + std::to_string(b) + "." + t + ".weight"] = e;
    }
  write_imatrix_file(path, f, false);
  return path;
}

// quantize --avg_bits --imatrix: the search's opt-RTN measurements (--measure_encoder opt_rtn)
// use the given imatrix (another file measures another KLD; that they replace the search's own
// Σx² exactly is KldProbe.GivenImatrixReplacesTheProbesOwn); a damaged file stops the run before
// the search.
TEST(AutoSchemeCli, GivenImatrixReachesTheSearch) {
  test::TempDir dir;
  auto run = [&](const std::string& imatrix, const std::string& out, bool quiet = true) {
    return test::run_command(test::cli() + " quantize --threads 2 " + (quiet ? "--quiet" : "") + " --model " +
                             demo_model() + " --dataset " + demo_text() +
                             " --nsamples 2 --seqlen 32 --autoscheme_nsamples 2 --autoscheme_seqlen 32 --score_cache none"
                             " --iters 0 --avg_bits 3 --options W2A16G64,W4A16 --measure_kld --measure_encoder opt_rtn"
                             " --imatrix " + imatrix + " --output_dir " + out);
  };
  std::map<std::string, double> kld;
  for (const std::string& name : {"a", "b"}) {
    auto r = run(demo_imatrix(dir / (name + ".gguf"), name == "a" ? 1 : 2), dir / name);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto rec = nlohmann::json::parse(test::read_text(dir / (name + "/signround_run.json")));
    kld[name] = rec["autoscheme"]["measured_kld"].get<double>();
  }
  EXPECT_GT(std::fabs(kld["a"] - kld["b"]), 1e-3 * kld["a"]) << kld["a"] << " " << kld["b"];

  const std::string good = test::read_text(dir / "a.gguf");
  std::ofstream(dir / "bad.gguf", std::ios::binary) << good.substr(0, good.size() / 2);
  auto bad = run(dir / "bad.gguf", dir / "bad", /*quiet=*/false);
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("bad.gguf"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.err.find("deltaloss"), std::string::npos) << bad.err;  // no option was scored
  EXPECT_FALSE(fs::exists(dir / "bad"));
}

// signround autoscheme --imatrix: the same file reading as quantize --avg_bits. Another file
// measures another KLD; a truncated file fails naming itself before any option is scored; an
// imatrix nothing would use (no opt-RTN measurement) is refused, not ignored.
TEST(AutoSchemeCli, StandaloneGivenImatrixReachesTheSearch) {
  test::TempDir dir;
  auto run = [&](const std::string& imatrix, const std::string& out, const std::string& extra = "--measure_kld") {
    return autoscheme("--score_cache none --avg_bits 3 --options W2A16G64,W4A16 --measure_encoder opt_rtn " + extra +
                      " --imatrix " + imatrix + " --output_dir " + out + " --json");
  };
  std::map<std::string, double> kld;
  for (const std::string& name : {"a", "b"}) {
    auto r = run(demo_imatrix(dir / (name + ".gguf"), name == "a" ? 1 : 2), dir / name);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    kld[name] = nlohmann::json::parse(r.out)["allocations"][0]["measured_kld"].get<double>();
  }
  EXPECT_GT(std::fabs(kld["a"] - kld["b"]), 1e-3 * kld["a"]) << kld["a"] << " " << kld["b"];

  const std::string good = test::read_text(dir / "a.gguf");
  std::ofstream(dir / "cut.gguf", std::ios::binary) << good.substr(0, good.size() / 2);
  auto bad = test::run_command(test::cli() + " autoscheme --threads 2 --model " + demo_model() + " --dataset " +
                               demo_text() + " --nsamples 4 --seqlen 64 --score_cache none --avg_bits 3 --options "
                               "W2A16G64,W4A16 --measure_kld --measure_encoder opt_rtn --imatrix " + (dir / "cut.gguf") +
                               " --output_dir " + (dir / "cut"));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("cut.gguf"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.err.find("deltaloss"), std::string::npos) << bad.err;  // no option was scored
  EXPECT_FALSE(fs::exists(dir / "cut"));

  auto unused = run(dir / "a.gguf", dir / "unused", "");
  EXPECT_NE(unused.exit_code, 0);
  EXPECT_NE(unused.err.find("--imatrix"), std::string::npos) << unused.err;
}

}  // namespace
}  // namespace sr
