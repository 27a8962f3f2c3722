// Hyper-parameters of a Llama-family decoder, whatever file they came from
// (Hugging Face config.json, GGUF llama.* metadata, llama2.c header).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sr {

enum class Arch { Llama, Mistral, Qwen2, Qwen3, Mixtral, Qwen2Moe, Qwen3Moe };

// RoPE frequency scaling. "none" or Llama-3.x "llama3" (smoothly divides the low
// frequencies by `factor`), or "linear" (positions divided by `factor`), or "yarn" (Qwen's:
// `factor` and `original_max_position`, llama.cpp's defaults otherwise; model/llama.cpp).
// freq_factors, when not empty, divides each inverse frequency as well: that is how
// GGUF files carry Llama-3 scaling (the rope_freqs.weight tensor, which
// convert_hf_to_gguf computes from the llama3 parameters).
struct RopeScaling {
  std::string type = "none";
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position = 8192;
  std::vector<float> freq_factors;  // [head_dim / 2], or empty
};

// Mixture-of-experts feed-forward (Mixtral, Qwen2-MoE, Qwen3-MoE). A sparse block routes each
// token to its top-k experts: weights softmax(router logits) over all E experts (fp32), the k
// largest kept, renormalised to sum 1 when norm_topk_prob (Mixtral always; the same as its
// softmax over the top-k logits). Qwen2-MoE adds a shared expert every token passes through,
// scaled by sigmoid(shared_expert_gate(x)).
struct MoeConfig {
  int64_t n_experts = 0;            // E (num_local_experts / num_experts); 0: a dense model
  int64_t n_used = 0;               // k (num_experts_per_tok), 1 <= k <= E
  int64_t expert_intermediate = 0;  // each expert's MLP width (Qwen: moe_intermediate_size)
  int64_t shared_intermediate = 0;  // the shared expert's width (Qwen2-MoE); 0: none
  bool norm_topk_prob = false;
  // Blocks whose feed-forward stays one dense MLP of width ModelConfig::intermediate (Qwen-MoE's
  // mlp_only_layers and decoder_sparse_step: block i is sparse iff i is not in mlp_only_layers
  // and (i + 1) % decoder_sparse_step == 0, as transformers builds its decoder layers).
  // [n_layers], or empty: every block is sparse.
  std::vector<bool> dense_blocks;
  int64_t sparse_step = 1;          // decoder_sparse_step, for messages naming why a block is dense
};

struct ModelConfig {
  Arch arch = Arch::Llama;
  std::string arch_name = "LlamaForCausalLM";  // as written in config.json's "architectures"
  int64_t hidden = 0;        // D: residual stream width
  int64_t intermediate = 0;  // F: MLP width
  int64_t n_layers = 0;      // L
  int64_t n_heads = 0;       // H
  int64_t n_kv_heads = 0;    // KV (GQA: H % KV == 0)
  int64_t head_dim = 0;      // hd (usually D / H)
  int64_t vocab = 0;         // V
  int64_t max_position = 0;  // context the model was trained for
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  double rms_eps = 1e-5;
  // Sliding-window attention: a sliding layer attends only to the last W positions (query i sees
  // keys j with i - W < j <= i). Mistral and Mixtral slide in every layer; Qwen2/Qwen3 (and their
  // MoE) with use_sliding_window only in the layers layer_types names "sliding_attention", or
  // without layer_types in layers >= max_window_layers, as transformers builds layer_types.
  int64_t sliding_window = 0;        // W; 0 = no layer slides
  std::vector<bool> sliding_layers;  // [n_layers]: which layers slide; empty = every layer
  bool tie_embeddings = false;  // lm_head shares the embedding matrix
  bool qkv_bias = false;        // Qwen2: q/k/v projections carry a bias
  bool qk_norm = false;         // Qwen3: RMSNorm over head_dim on q and k before RoPE
  int32_t bos_id = 1, eos_id = 2;
  std::string dtype = "F32";    // storage dtype of the source weights
  MoeConfig moe;                // the feed-forward is sparse when moe.n_experts > 0 (but in dense_blocks)

  int64_t q_dim() const { return n_heads * head_dim; }
  // The attention window of layer `layer` (0: the whole context).
  int64_t window_of(int64_t layer) const {
    if (sliding_window <= 0) return 0;
    if (sliding_layers.empty()) return sliding_window;
    return layer >= 0 && layer < int64_t(sliding_layers.size()) && sliding_layers[size_t(layer)] ? sliding_window : 0;
  }
  int64_t kv_dim() const { return n_kv_heads * head_dim; }
  bool is_moe() const { return moe.n_experts > 0; }
  // Block `block`'s feed-forward is a mixture of experts (else one dense MLP).
  bool sparse_block(int64_t block) const {
    return is_moe() && !(block >= 0 && block < int64_t(moe.dense_blocks.size()) && moe.dense_blocks[size_t(block)]);
  }
  // Some block of this MoE model keeps a dense MLP.
  bool has_dense_blocks() const {
    for (bool d : moe.dense_blocks) if (d) return true;
    return false;
  }
};

// Parses a Hugging Face config.json. Throws sr::Error naming `path` for an
// unsupported architecture, a missing or inconsistent field.
ModelConfig parse_hf_config(const std::string& json_text, const std::string& path);

struct Llama2cHeader;  // io/llama2c.h

// The config a llama2.c checkpoint's header describes (run.c's constants for what the header
// lacks), validated; throws sr::Error naming `path` as validate_config does.
ModelConfig config_from_llama2c(const Llama2cHeader& h, const std::string& path);

// Checks internal consistency (divisibility, positive sizes); throws naming `source`.
void validate_config(const ModelConfig& c, const std::string& source);

}  // namespace sr
