// Sliding-window attention per layer (config.h ModelConfig::window_of): Mistral slides in every
// layer; Qwen2/Qwen3 with use_sliding_window only from max_window_layers on, or where layer_types
// says "sliding_attention" (transformers' Qwen2Config builds layer_types from max_window_layers).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "model/model.h"
#include "random_model.h"
#include "testutil.h"

namespace sr {
namespace {

ModelConfig config_with(const std::string& arch, const nlohmann::json& extra) {
  nlohmann::json j = {{"architectures", {arch}}, {"hidden_size", 64}, {"intermediate_size", 128},
                      {"num_hidden_layers", 4}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                      {"vocab_size", 96}};
  j.update(extra);
  return parse_hf_config(j.dump(), "config.json");
}

std::vector<int64_t> windows(const ModelConfig& c) {
  std::vector<int64_t> w;
  for (int64_t i = 0; i < c.n_layers; ++i) w.push_back(c.window_of(i));
  return w;
}

TEST(SlidingWindow, WhichLayersSlide) {
  using W = std::vector<int64_t>;
  EXPECT_EQ(windows(config_with("MistralForCausalLM", {{"sliding_window", 5}})), (W{5, 5, 5, 5}));
  EXPECT_EQ(windows(config_with("MistralForCausalLM", {{"sliding_window", nullptr}})), (W{0, 0, 0, 0}));
  // Qwen2: off unless use_sliding_window; then from max_window_layers on.
  EXPECT_EQ(windows(config_with("Qwen2ForCausalLM", {{"sliding_window", 5}, {"max_window_layers", 2}})),
            (W{0, 0, 0, 0}));
  EXPECT_EQ(windows(config_with("Qwen2ForCausalLM",
                                {{"use_sliding_window", true}, {"sliding_window", 5}, {"max_window_layers", 2}})),
            (W{0, 0, 5, 5}));
  // Without max_window_layers, transformers' default 28: no layer of a 4-layer model slides.
  EXPECT_EQ(windows(config_with("Qwen3ForCausalLM", {{"use_sliding_window", true}, {"sliding_window", 5}})),
            (W{0, 0, 0, 0}));
  // layer_types decides where given.
  EXPECT_EQ(windows(config_with("Qwen3ForCausalLM", {{"use_sliding_window", true}, {"sliding_window", 5},
                                                     {"max_window_layers", 0},
                                                     {"layer_types", {"sliding_attention", "full_attention",
                                                                      "sliding_attention", "full_attention"}}})),
            (W{5, 0, 5, 0}));
  EXPECT_NE(test::error_of([] {
              config_with("Qwen2ForCausalLM", {{"use_sliding_window", true}, {"sliding_window", 5},
                                               {"layer_types", {"full_attention"}}});
            }).find("layer_types must be an array of 4 entries"),
            std::string::npos);
  EXPECT_NE(test::error_of([] {
              config_with("Qwen2ForCausalLM", {{"use_sliding_window", true}, {"sliding_window", 5},
                                               {"layer_types", {"full_attention", "chunked_attention",
                                                                "full_attention", "full_attention"}}});
            }).find("layer_types[1] 'chunked_attention' is not supported"),
            std::string::npos);
}

// The forward applies each layer's own window: positions before the window's end see what full
// attention sees; later ones differ; a model whose sliding layers are 2 and 3 differs from one
// that slides everywhere (what signround did before), and equals one that says so by layer_types.
TEST(SlidingWindow, ForwardUsesEachLayersWindow) {
  test::TempDir dir;
  auto model = [&](const std::string& name, const std::string& extra) {
    test::RandomModelSpec s;
    s.arch = "Qwen2ForCausalLM";
    s.layers = 4;
    s.extra_config_json = extra;
    return Model::open(test::write_random_hf_model(dir / name, s));
  };
  auto full = model("full", "");
  auto upper = model("upper", R"({"use_sliding_window": true, "sliding_window": 4, "max_window_layers": 2})");
  auto typed = model("typed", R"({"use_sliding_window": true, "sliding_window": 4, "max_window_layers": 9,
      "layer_types": ["full_attention", "full_attention", "sliding_attention", "sliding_attention"]})");
  auto every = model("every", R"({"use_sliding_window": true, "sliding_window": 4, "max_window_layers": 0})");
  const at::Tensor tokens = at::randint(3, 96, {2, 12}, at::kLong);
  const at::Tensor a = full->forward(tokens), b = upper->forward(tokens), c = typed->forward(tokens),
                   d = every->forward(tokens);
  EXPECT_TRUE(at::equal(b, c));
  EXPECT_TRUE(at::allclose(a.narrow(1, 0, 4), b.narrow(1, 0, 4), 1e-6, 1e-6));  // window not yet reached
  EXPECT_GT((a.narrow(1, 4, 8) - b.narrow(1, 4, 8)).abs().max().item<float>(), 1e-4);
  EXPECT_TRUE(at::allclose(b.narrow(1, 0, 4), d.narrow(1, 0, 4), 1e-6, 1e-6));
  EXPECT_GT((b.narrow(1, 4, 8) - d.narrow(1, 4, 8)).abs().max().item<float>(), 1e-4);
}

}  // namespace
}  // namespace sr
