// The mixed-precision search with i-quant options (issue 16, item 5): `quantize --target_bpw B
// --options gguf:<i-quant>,...` on the 4m model. The search counts each option at its file bits
// (layer_file_bits: IQ4_XS 4.25, IQ3_S 3.4375, IQ2_XS 2.3125 … per weight), so the file it
// writes is at most B bits per weight; every searched block linear gets one of the options;
// llama.cpp c392e50 loads the file and evaluates it. Without the importances in DeltaLoss's
// scoring, an IQ2_XS option stopped the search ("iq2_xs needs an importance matrix").
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>
#include <nlohmann/json.hpp>

#include "testutil.h"

namespace sr {
namespace {
namespace fs = std::filesystem;

const std::string kModel = "models/tinystories-llama-4m";

test::CommandResult quantize(const std::string& args) {
  return test::run_command(test::cli() + " quantize --threads 2 --quiet --model " + test::shared(kModel) + " " + args);
}

struct Case {
  const char* mix;      // --format gguf:<mix>: the types of the tensors the search does not place
  const char* options;  // --options
  double target_bpw;
  const char* extra = "";  // more flags
};

void expect_search_within(const Case& c, const std::string& scores) {
  SCOPED_TRACE(c.options);
  test::TempDir dir;
  const std::string out = dir / "o.gguf";
  char bpw[32];
  std::snprintf(bpw, sizeof(bpw), "%.4f", c.target_bpw);
  const std::string flags = std::string("--iters 0 --format gguf:") + c.mix + " --options " + c.options +
                            " --target_bpw " + bpw + " " + c.extra + " --score_cache " + scores +
                            " --autoscheme_nsamples 4 --autoscheme_seqlen 64 --nsamples 4 --seqlen 64 --dataset " +
                            test::shared("data/calib_stories.txt") + " --output_dir " + out;
  auto dry = quantize(flags + " --dry_run --json");
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  const nlohmann::json plan = nlohmann::json::parse(dry.out);
  EXPECT_LE(plan["bits_per_weight"].get<double>(), c.target_bpw);

  // The searched tensors (the block linears) take the options' types, and the search mixes them.
  std::set<std::string> allowed;
  std::stringstream options(c.options);
  for (std::string o; std::getline(options, o, ',');) allowed.insert(o.substr(5));  // "gguf:iq3_s" -> "iq3_s"
  std::set<std::string> used;
  for (const auto& t : plan["tensors"]) {
    const std::string name = t["name"];
    if (name.rfind("blk.", 0) != 0 || t["shape"].size() != 2) continue;
    const std::string type = t["type"];
    EXPECT_TRUE(allowed.count(type)) << name << " got " << type;
    used.insert(type);
  }
  EXPECT_GE(used.size(), 2u) << "the budget should leave room to mix the options";

  auto run = quantize(flags);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  ASSERT_TRUE(fs::exists(out));
  EXPECT_EQ(fs::file_size(out), plan["bytes"].get<uint64_t>());
  EXPECT_LE(8.0 * double(fs::file_size(out)) / plan["parameters"].get<double>(), c.target_bpw);
  const double ppl =  // 2 chunks of 128 tokens
      test::llama_cpp_ppl(out, test::shared("data/tinystories_val.txt"), "-c 128 --chunks 2 -t 1");
  EXPECT_TRUE(std::isfinite(ppl) && ppl > 1 && ppl < 100) << ppl;
}

TEST(GgufIquantOptions, TargetBpwSearchesAmongIquantTypesAtTheirFileBits) {
  SR_REQUIRE_SHARED(kModel);
  SR_REQUIRE_SHARED("data/calib_stories.txt");
  SR_REQUIRE_SHARED("tools/llama.cpp/bin/llama-perplexity");
  test::TempDir scores;  // DeltaLoss scores, shared by the cases' dry and real runs
  expect_search_within({"iq4_xs", "gguf:iq4_xs,gguf:q4_k,gguf:q6_k", 4.8}, scores / "s");
  // Grid types llama.cpp quantizes only with an imatrix (IQ2_XS): DeltaLoss scores them with its
  // imatrix search on Σx² of an FP pass, the KLD probe likewise. (The 4m model's output and
  // token_embd take 0.6 bits/weight of the file: all-IQ2_XS blocks are 2.65 bits/weight.)
  // --measure_kld: the probe measures the allocation with those searches too (under RTN).
  expect_search_within({"iq2_xs", "gguf:iq2_xs,gguf:iq3_s,gguf:q4_k", 3.0, "--measure_kld"}, scores / "s");
}

}  // namespace
}  // namespace sr
