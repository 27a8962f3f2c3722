// Pins the forward pass and the tokenizers to an independent PyTorch forward:
// ../shared/reference/torch/*.safetensors hold the token ids each tokenizer must
// produce for a fixed sentence and the float64-computed logits at every position.
#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "model/model.h"
#include "model/tensor_convert.h"
#include "testutil.h"

namespace sr {
namespace {

struct Reference {
  at::Tensor tokens;  // [T] int64
  at::Tensor logits;  // [T, V]
};

Reference load_reference(const std::string& path) {
  TensorStore store;
  read_safetensors(path, store);
  const TensorEntry& t = store.get("tokens");
  auto tokens = at::from_blob(const_cast<uint8_t*>(t.data), {t.shape[0]}, at::kInt).to(at::kLong);
  return {tokens, entry_to_float(store.get("logits"))};
}

void check_model(const std::string& model_path, const std::string& ref_path, const std::string& text) {
  auto model = Model::open(model_path);
  Reference ref = load_reference(ref_path);
  // 1. The tokenizer reproduces the reference ids (BOS first).
  std::vector<int32_t> ids = model->tokenizer().encode_with_bos(text);
  std::vector<int64_t> want(ref.tokens.data_ptr<int64_t>(), ref.tokens.data_ptr<int64_t>() + ref.tokens.numel());
  ASSERT_EQ(std::vector<int64_t>(ids.begin(), ids.end()), want);
  // 2. The forward reproduces the reference logits.
  auto logits = model->forward(ref.tokens.unsqueeze(0)).squeeze(0);
  const double max_diff = (logits - ref.logits).abs().max().item<double>();
  std::printf("%s: max |logit - reference| = %.3g over %lld positions\n", model_path.c_str(), max_diff,
              (long long)ref.tokens.numel());
  EXPECT_LT(max_diff, 2e-4);
  EXPECT_TRUE(at::equal(logits.argmax(-1), ref.logits.argmax(-1)));
}

TEST(ReferenceLogits, TinyStories4mHfFolder) {
  SR_REQUIRE_SHARED("reference/torch/tinystories-llama-4m-logits.safetensors");
  check_model(test::shared("models/tinystories-llama-4m"),
              test::shared("reference/torch/tinystories-llama-4m-logits.safetensors"),
              "Once upon a time, there was a little girl named Lily. She loved to play outside in the park "
              "with her dog.");
}

TEST(ReferenceLogits, Stories260kLlama2c) {
  SR_REQUIRE_SHARED("reference/torch/stories260K-logits.safetensors");
  check_model(test::shared("models/stories260K/stories260K.bin"),
              test::shared("reference/torch/stories260K-logits.safetensors"),
              "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.");
}

// A perturbed weight must break the comparison: the test can fail.
TEST(ReferenceLogits, DetectsAPerturbedWeight) {
  SR_REQUIRE_SHARED("reference/torch/tinystories-llama-4m-logits.safetensors");
  auto model = Model::open(test::shared("models/tinystories-llama-4m"));
  Reference ref = load_reference(test::shared("reference/torch/tinystories-llama-4m-logits.safetensors"));
  auto tokens = ref.tokens.unsqueeze(0);
  auto positions = at::arange(tokens.size(1), at::kLong);
  auto h = model->embed(tokens);
  for (int64_t i = 0; i < model->config().n_layers; ++i) {
    BlockWeights w = model->load_block(i);
    if (i == 1) w.weight(llama::Down)[3][5] += 0.05f;
    h = block_forward(model->config(), w, h, positions, model->rope(tokens.size(1)));
  }
  const double max_diff = (model->logits(h).squeeze(0) - ref.logits).abs().max().item<double>();
  EXPECT_GT(max_diff, 1e-3);
}

}  // namespace
}  // namespace sr
