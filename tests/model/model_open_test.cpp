// Opening models: every architecture variant and dtype on random weights, and a
// precise error (never a crash) for each kind of bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "random_model.h"
#include "testutil.h"

namespace sr {
namespace {
namespace fs = std::filesystem;

using test::error_of;

TEST(ModelOpen, EveryArchitectureAndDtypeRuns) {
  for (std::string arch : {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"}) {
    for (std::string dtype : {"F32", "F16", "BF16"}) {
      test::TempDir dir;
      test::RandomModelSpec s;
      s.arch = arch;
      s.dtype = dtype;
      s.tied = arch == "Qwen2ForCausalLM";
      s.shards = dtype == "BF16" ? 3 : 1;
      auto m = Model::open(test::write_random_hf_model(dir.path(), s));
      EXPECT_EQ(m->config().qkv_bias, arch == "Qwen2ForCausalLM");
      EXPECT_EQ(m->config().qk_norm, arch == "Qwen3ForCausalLM");
      EXPECT_EQ(m->config().dtype, dtype);
      auto logits = m->forward(at::randint(0, s.vocab, {2, 9}, at::kLong));
      EXPECT_EQ(logits.sizes(), at::IntArrayRef({2, 9, s.vocab}));
      EXPECT_TRUE(logits.isfinite().all().item<bool>()) << arch << " " << dtype;
    }
  }
}

// Causality: the logits at position t must not depend on tokens after t.
TEST(ModelOpen, ForwardIsCausal) {
  test::TempDir dir;
  auto m = Model::open(test::write_random_hf_model(dir.path(), {}));
  auto a = at::randint(0, 96, {1, 12}, at::kLong);
  auto b = a.clone();
  b[0][8] = (a[0][8].item<int64_t>() + 1) % 96;
  auto la = m->forward(a), lb = m->forward(b);
  EXPECT_TRUE(at::allclose(la.narrow(1, 0, 8), lb.narrow(1, 0, 8)));
  EXPECT_FALSE(at::allclose(la.narrow(1, 8, 4), lb.narrow(1, 8, 4)));
}

TEST(ModelOpen, BlockForwardHasGradients) {
  test::TempDir dir;
  auto m = Model::open(test::write_random_hf_model(dir.path(), {}));
  BlockWeights w = m->load_block(1);
  w.weight(llama::Up).requires_grad_(true);
  auto x = at::randn({2, 5, 64}).requires_grad_(true);
  auto y = block_forward(m->config(), w, x, at::arange(5, at::kLong), m->rope(5));
  y.pow(2).sum().backward();
  EXPECT_TRUE(x.grad().defined() && x.grad().abs().sum().item<double>() > 0);
  EXPECT_TRUE(w.weight(llama::Up).grad().abs().sum().item<double>() > 0);
}

struct Mutation {
  std::string what;
  std::function<void(const std::string& dir)> apply;
  std::string expect;  // fragment of the error
};

TEST(ModelOpen, BadInputsGiveClearErrors) {
  auto rewrite_config = [](const std::string& dir, auto edit) {
    auto path = dir + "/config.json";
    nlohmann::json j = nlohmann::json::parse(std::ifstream(path));
    edit(j);
    std::ofstream(path, std::ios::trunc) << j.dump();
  };
  std::vector<Mutation> cases = {
      {"missing config", [](auto d) { fs::remove(d + "/config.json"); }, "without config.json"},
      {"bad json", [](auto d) { std::ofstream(d + "/config.json", std::ios::trunc) << "{"; }, "not valid JSON"},
      {"arch", [&](auto d) { rewrite_config(d, [](auto& j) { j["architectures"] = {"GPT2LMHeadModel"}; }); },
       "GPT2LMHeadModel"},
      {"missing field", [&](auto d) { rewrite_config(d, [](auto& j) { j.erase("hidden_size"); }); }, "hidden_size"},
      {"heads", [&](auto d) { rewrite_config(d, [](auto& j) { j["num_key_value_heads"] = 3; }); }, "multiple"},
      {"wrong shape", [&](auto d) { rewrite_config(d, [](auto& j) { j["intermediate_size"] = 100; }); },
       "should have shape"},
      {"missing tensor", [&](auto d) { rewrite_config(d, [](auto& j) { j["num_hidden_layers"] = 3; }); }, "missing"},
      {"extra tensor", [&](auto d) { rewrite_config(d, [](auto& j) { j["num_hidden_layers"] = 1; }); },
       "unexpected tensor"},
      {"no weights", [](auto d) { fs::remove(d + "/model.safetensors"); }, "no model.safetensors"},
      {"truncated", [](auto d) { fs::resize_file(d + "/model.safetensors", 1000); }, "model.safetensors"},
      {"rope", [&](auto d) { rewrite_config(d, [](auto& j) { j["rope_scaling"] = {{"type", "longrope"}, {"factor", 2}}; }); },
       "longrope"},
      {"yarn without its context", [&](auto d) {
         rewrite_config(d, [](auto& j) { j["rope_scaling"] = {{"type", "yarn"}, {"factor", 2}}; }); },
       "original_max_position_embeddings"},
  };
  for (const Mutation& m : cases) {
    test::TempDir dir;
    test::write_random_hf_model(dir.path(), {});
    m.apply(dir.path());
    std::string msg = error_of([&] { Model::open(dir.path()); });
    EXPECT_NE(msg.find(m.expect), std::string::npos) << m.what << ": got '" << msg << "'";
  }
  EXPECT_NE(error_of([] { Model::open("/nonexistent/model"); }).find("does not exist"), std::string::npos);
}

TEST(ModelOpen, Llama2cTruncatedAndGarbage) {
  SR_REQUIRE_SHARED("models/stories260K/stories260K.bin");
  test::TempDir dir;
  fs::copy_file(test::shared("models/stories260K/stories260K.bin"), dir / "m.bin");
  fs::resize_file(dir / "m.bin", 5000);
  EXPECT_NE(error_of([&] { Model::open(dir / "m.bin"); }).find("truncated"), std::string::npos);
  std::ofstream(dir / "g.bin") << std::string(64, '\xff');
  EXPECT_NE(error_of([&] { Model::open(dir / "g.bin"); }).find("implausible header"), std::string::npos);
}

TEST(ModelOpen, TokenizerDiscoveryAndOverride) {
  test::TempDir dir;
  auto m = Model::open(test::write_random_hf_model(dir.path(), {}));
  EXPECT_FALSE(m->has_tokenizer());
  EXPECT_NE(error_of([&] { m->tokenizer(); }).find("tokenizer_path"), std::string::npos);
  std::ofstream(dir / "tokenizer.json") << "{}";
  auto m2 = Model::open(dir.path());
  EXPECT_NE(error_of([&] { m2->tokenizer(); }).find("tokenizer.json"), std::string::npos);
  if (test::have_shared("models/stories260K/tok512.bin")) {
    OpenOptions o;
    o.tokenizer_path = test::shared("models/tinystories-llama-4m/tokenizer.model");
    EXPECT_NE(error_of([&] { Model::open(dir.path(), o); }).find("1024 tokens"), std::string::npos);
  }
}

}  // namespace
}  // namespace sr
