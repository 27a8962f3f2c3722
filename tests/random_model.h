// Tiny random-weight models written to disk in code, for tests that must not
// depend on ../shared: a Hugging Face folder (config.json + safetensors, optionally
// sharded) with a small SentencePiece-free setup (tests that need text use ids).
#pragma once
#include <cstdint>
#include <string>

#include "model/config.h"

namespace sr::test {

struct RandomModelSpec {
  int64_t hidden = 64, intermediate = 128, layers = 2, heads = 4, kv_heads = 2, vocab = 96;
  int64_t max_position = 256;
  std::string arch = "LlamaForCausalLM";  // or Mistral/Qwen2/Qwen3ForCausalLM
  std::string dtype = "F32";              // F32, F16 or BF16
  bool tied = false;
  int shards = 1;                         // > 1 writes model.safetensors.index.json
  uint64_t seed = 1;
  double scale = 0.05;                    // std of the random weights
};

// Writes the model into folder `dir` (created). Returns dir.
std::string write_random_hf_model(const std::string& dir, const RandomModelSpec& spec);

}  // namespace sr::test
