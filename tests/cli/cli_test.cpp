// The CLI end to end: the README's demo command, JSON output, and precise errors
// with a non-zero exit code (never a crash) for bad flags and bad inputs.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "random_model.h"

#include "testutil.h"

namespace sr {
namespace {

std::string demo_model() { return test::repo("demo/tinystories-llama-4m"); }
std::string demo_text() { return test::repo("demo/stories.txt"); }

TEST(Cli, EvalDemoModelJson) {
  auto r = test::run_command(test::cli() + " eval --model " + demo_model() + " --text " + demo_text() +
                             " --ctx 128 --chunks 4 --threads 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tokens"].get<int64_t>(), 4 * 63);
  EXPECT_GT(j["ppl"].get<double>(), 1.0);
  EXPECT_LT(j["ppl"].get<double>(), 100.0);
  for (const char* k : {"ppl_stderr", "nll", "seconds", "tokens_per_second"}) EXPECT_TRUE(j.contains(k)) << k;
}

TEST(Cli, EvalWithKldBaseOfItself) {
  auto r = test::run_command(test::cli() + " eval --model " + demo_model() + " --text " + demo_text() +
                             " --ctx 64 --chunks 2 --kld-base " + demo_model() + " --json --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_NEAR(j["kld"].get<double>(), 0.0, 1e-6);
  EXPECT_EQ(j["top1_agreement"].get<double>(), 1.0);
}

TEST(Cli, InspectDemoModel) {
  auto r = test::run_command(test::cli() + " inspect --model " + demo_model() + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["parameters"].get<int64_t>(), 3672320);
  EXPECT_EQ(j["num_hidden_layers"].get<int64_t>(), 4);
  EXPECT_EQ(j["tensors"].size(), 39u);
  auto t = test::run_command(test::cli() + " inspect --model " + demo_model());
  EXPECT_NE(t.out.find("LlamaForCausalLM"), std::string::npos);
}

// GGUF files go through the same Model::open: inspect lists their ggml types, eval
// uses their embedded tokenizer (a random model with a synthetic vocabulary here).
TEST(Cli, InspectAndEvalAGgufFile) {
  test::TempDir dir;
  test::RandomModelSpec spec;
  const std::string gguf = test::write_random_gguf_model(dir.path(), spec, "q4_0");
  auto r = test::run_command(test::cli() + " inspect --model " + gguf + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["format"], "gguf");
  EXPECT_EQ(j["architecture"], "llama");
  EXPECT_EQ(j["vocab_size"].get<int64_t>(), spec.vocab);
  std::set<std::string> dtypes;
  for (const auto& t : j["tensors"]) dtypes.insert(t["dtype"].get<std::string>());
  EXPECT_EQ(dtypes, std::set<std::string>({"F32", "Q4_0", "Q8_0"}));
  std::ofstream(dir / "text.txt") << std::string(2000, ' ');  // spaces: "▁" pieces of the vocabulary
  r = test::run_command(test::cli() + " eval --model " + gguf + " --text " + dir / "text.txt" +
                        " --ctx 16 --chunks 2 --json --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GT(nlohmann::json::parse(r.out)["ppl"].get<double>(), 1.0);
}

struct BadCall {
  std::string args, expect;
};

TEST(Cli, BadInputsExitNonZeroWithAMessage) {
  test::TempDir dir;
  std::ofstream(dir / "latin1.txt") << "caf\xe9 au lait";
  const std::string ok = " --model " + demo_model() + " --text " + demo_text();
  std::vector<BadCall> calls = {
      {"eval" + ok + " --bogus 1", "unknown flag --bogus"},
      {"eval --text " + demo_text(), "--model is required"},
      {"eval" + ok + " --ctx abc", "--ctx expects an integer"},
      {"eval" + ok + " --ctx 2", "--ctx must be"},
      {"eval" + ok + " --protocol foo", "--protocol"},
      {"eval" + ok + " --ctx 100000", "tokens; at least 100000"},
      {"eval --model /nonexistent --text " + demo_text(), "does not exist"},
      {"eval --model " + demo_model() + " --text " + (dir / "latin1.txt"), "not valid UTF-8 at byte offset 3"},
      {"eval --model " + demo_model() + " --text " + (dir / "missing.txt"), "cannot read"},
      {"frobnicate", "unknown command"},
      {"eval" + ok + " --threads -3", "--threads"},
      {"eval" + ok + " --tokenizer " + (dir / "missing.model"), "--tokenizer"},
      {"eval" + ok + " --chunks 0", "--chunks"},
  };
  for (const BadCall& c : calls) {
    auto r = test::run_command(test::cli() + " " + c.args);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_LT(r.exit_code, 3) << c.args << ": " << r.err;  // 3 = internal error, never expected here
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.args << "\n  stderr: " << r.err;
  }
}

// The library names the field (tokenizer_path); the CLI, which knows eval will tokenize, names
// the flag before any work.
TEST(Cli, MissingTokenizerNamesTheFlag) {
  test::TempDir dir;
  const std::string model = test::write_random_hf_model(dir.path(), {});  // no tokenizer beside it
  auto r = test::run_command(test::cli() + " eval --model " + model + " --text " + demo_text());
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("no tokenizer.model"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("pass a tokenizer with --tokenizer"), std::string::npos) << r.err;
  auto inspect = test::run_command(test::cli() + " inspect --model " + model);
  EXPECT_EQ(inspect.exit_code, 0) << "inspect needs no tokenizer\n" << inspect.err;
}

TEST(Cli, HelpListsFlags) {
  auto r = test::run_command(test::cli() + " eval --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--kld-base"), std::string::npos);
  EXPECT_NE(r.out.find("--threads"), std::string::npos);
}

}  // namespace
}  // namespace sr
