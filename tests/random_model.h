// Tiny random-weight models written to disk in code, for tests that must not
// depend on ../shared: a Hugging Face folder (config.json + safetensors, optionally
// sharded) with a small SentencePiece-free setup (tests that need text use ids).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "tokenizer/tokenizer.h"

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
  std::string rope_scaling_json;          // config.json "rope_scaling" object; empty: null
  // Mixture of experts, for arch Mixtral/Qwen2Moe/Qwen3MoeForCausalLM: `experts` experts of width
  // `intermediate`, `experts_used` per token; Qwen2-MoE adds a shared expert of `shared_intermediate`.
  int64_t experts = 0, experts_used = 2, shared_intermediate = 96;
  bool norm_topk_prob = true;
  // Qwen-MoE dense blocks (config.h MoeConfig::dense_blocks): config decoder_sparse_step and
  // mlp_only_layers; a dense block's MLP is `dense_intermediate` wide (0: `intermediate`), the
  // config's intermediate_size.
  int64_t sparse_step = 1;
  std::vector<int64_t> mlp_only_layers;
  int64_t dense_intermediate = 0;
  // A JSON object whose fields are added to (or replace those of) config.json, e.g.
  // {"use_sliding_window": true, "sliding_window": 4}.
  std::string extra_config_json;
};

// Writes the model into folder `dir` (created). Returns dir.
std::string write_random_hf_model(const std::string& dir, const RandomModelSpec& spec);

// A SentencePiece-style vocabulary of `size` >= 3 pieces: <unk>, <s>, </s>, then
// "▁t3", "▁t4", ... (scores decreasing), for models that need one to be written.
Vocabulary synthetic_vocabulary(int64_t size);

// write_random_hf_model into dir/hf, then that model as dir/model-<mix>.gguf with the
// synthetic vocabulary (export_gguf, ref encoders). Returns the .gguf path.
std::string write_random_gguf_model(const std::string& dir, const RandomModelSpec& spec,
                                    const std::string& mix = "f32");

// Writes `words` words of the synthetic vocabulary ("t3 t16 t29 ...", pieces t3..t92) to `path`:
// calibration text that such a model tokenizes into known pieces. Returns path.
std::string write_vocabulary_text(const std::string& path, int words = 400);

}  // namespace sr::test
