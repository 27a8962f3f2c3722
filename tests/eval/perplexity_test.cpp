// Evaluation: the protocols' token bookkeeping, KL divergence identities, and
// agreement with the perplexities llama.cpp's llama-perplexity measured
// (../shared/reference/llamacpp/README.md: -c 256 --chunks 200 on tinystories_val.txt).
#include "eval/perplexity.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "io/text.h"
#include "model/model.h"
#include "random_model.h"
#include "testutil.h"

namespace sr {
namespace {

TEST(EvalBatch, LlamaCppScoresSecondHalfWithBosFirst) {
  std::vector<int32_t> ids;
  for (int i = 0; i < 25; ++i) ids.push_back(100 + i);
  EvalOptions o;
  o.ctx = 8;
  EvalBatch b = make_eval_batch(ids, 1, o);
  ASSERT_EQ(b.inputs.sizes(), at::IntArrayRef({3, 8}));  // 25 / 8 = 3 chunks, tail dropped
  EXPECT_EQ(b.inputs[1][0].item<int64_t>(), 1);          // first token replaced by BOS
  EXPECT_EQ(b.inputs[1][1].item<int64_t>(), 109);
  EXPECT_EQ(b.first, 4);
  ASSERT_EQ(b.targets.size(1), 3);                       // ctx - 1 - ctx/2
  EXPECT_EQ(b.targets[1][0].item<int64_t>(), 113);       // position 4 predicts token 5 of the chunk
  EXPECT_EQ(b.targets[2][2].item<int64_t>(), 123);
  o.chunks = 2;
  EXPECT_EQ(make_eval_batch(ids, 1, o).inputs.size(0), 2);
  o.ctx = 30;
  EXPECT_THROW(make_eval_batch(ids, 1, o), Error);
}

TEST(EvalBatch, WindowsPrependBosAndScoreEveryToken) {
  std::vector<int32_t> ids;
  for (int i = 0; i < 16; ++i) ids.push_back(100 + i);
  EvalOptions o;
  o.ctx = 8;
  o.protocol = Protocol::Windows;
  EvalBatch b = make_eval_batch(ids, 1, o);
  ASSERT_EQ(b.inputs.sizes(), at::IntArrayRef({2, 8}));
  EXPECT_EQ(b.inputs[1][0].item<int64_t>(), 1);
  EXPECT_EQ(b.inputs[1][1].item<int64_t>(), 108);
  EXPECT_EQ(b.first, 0);
  EXPECT_EQ(b.targets[1][0].item<int64_t>(), 108);
  EXPECT_EQ(b.targets[1][7].item<int64_t>(), 115);
}

TEST(Eval, KldOfAModelWithItselfIsZero) {
  test::TempDir dir;
  auto m = Model::open(test::write_random_hf_model(dir.path(), {}));
  std::vector<int32_t> ids;
  for (int i = 0; i < 64; ++i) ids.push_back((i * 37) % 96);
  EvalOptions o;
  o.ctx = 16;
  o.progress = false;
  EvalResult r = evaluate_batch(*m, make_eval_batch(ids, 1, o), o, m.get());
  EXPECT_NEAR(r.kld, 0.0, 1e-7);
  EXPECT_EQ(r.top1, 1.0);
  EXPECT_EQ(r.tokens, 4 * 7);
  // A different model has a positive divergence.
  test::TempDir dir2;
  test::RandomModelSpec s;
  s.seed = 7;
  auto other = Model::open(test::write_random_hf_model(dir2.path(), s));
  EvalResult r2 = evaluate_batch(*m, make_eval_batch(ids, 1, o), o, other.get());
  EXPECT_GT(r2.kld, 1e-4);
}

// Reference: llama-perplexity -c 256 --chunks 200 -t 2 (../shared/reference/llamacpp/README.md).
void expect_llamacpp_ppl(const std::string& model_path, double want, double want_stderr) {
  auto m = Model::open(model_path);
  EvalOptions o;
  o.ctx = 256;
  o.chunks = 200;
  o.progress = false;
  EvalResult r = evaluate_text(*m, read_text_file(test::shared("data/tinystories_val.txt")), o);
  std::printf("%s: PPL %.4f +/- %.5f (llama.cpp %.4f +/- %.5f), %.0f tokens/s\n", model_path.c_str(), r.ppl,
              r.ppl_stderr, want, want_stderr, r.tokens_per_second);
  EXPECT_EQ(r.tokens, 200 * 127);
  EXPECT_LT(std::abs(r.ppl / want - 1), 1e-3);
  EXPECT_LT(std::abs(r.ppl_stderr / want_stderr - 1), 1e-2);
}

TEST(LlamaCppAgreement, TinyStories4mHfFolder) {
  SR_REQUIRE_SHARED("data/tinystories_val.txt");
  SR_REQUIRE_SHARED("models/tinystories-llama-4m/model.safetensors");
  expect_llamacpp_ppl(test::shared("models/tinystories-llama-4m"), 7.7478, 0.10412);
}

TEST(LlamaCppAgreement, Stories260kLlama2c) {
  SR_REQUIRE_SHARED("data/tinystories_val.txt");
  SR_REQUIRE_SHARED("models/stories260K/stories260K.bin");
  expect_llamacpp_ppl(test::shared("models/stories260K/stories260K.bin"), 3.9173, 0.04521);
}

}  // namespace
}  // namespace sr
