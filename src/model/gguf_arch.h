// The GGUF architectures signround writes and reads: one row per model family, saying under
// which llama.cpp architecture name (general.architecture, and the prefix of its hyper-parameter
// keys) the family goes and what that architecture holds. The writer (export/gguf_metadata.h,
// export/gguf_plan.h, export/gguf_export.h) and the reader (model/model_gguf.cpp) both use it.
//
//   family    GGUF arch  RoPE rows     q/k/v bias  q/k norm  experts  shared expert  keys beyond the common ones
//   Llama     llama      interleaved   optional    -         -        -              vocab_size, rope.dimension_count,
//   Mistral   llama      interleaved   optional    -         -        -                rope.scaling.{type,factor} (linear)
//   Mixtral   llama      interleaved   optional    -         yes      -              + expert_count, expert_used_count
//   Qwen2     qwen2      HF (NEOX)     required    -         -        -              -
//   Qwen3     qwen3      HF (NEOX)     -           yes       -        -              -
//   Qwen2Moe  qwen2moe   HF (NEOX)     required    -         yes      yes            expert_{count,used_count},
//   Qwen3Moe  qwen3moe   HF (NEOX)     -           yes       yes      -                expert_feed_forward_length
//                                                                                    (+ expert_shared_feed_forward_length)
//
// The common keys (every architecture, "<arch>." prefix), as convert_hf_to_gguf.py's base
// set_gguf_parameters writes them: block_count, context_length, embedding_length,
// feed_forward_length (HF intermediate_size; the experts' own width is
// expert_feed_forward_length for the Qwen MoE families, feed_forward_length itself for
// Mixtral), attention.head_count, attention.head_count_kv, rope.freq_base,
// attention.layer_norm_rms_epsilon, attention.key_length, attention.value_length.
//
// RoPE rows: llama.cpp runs "llama" with the adjacent-pairs RoPE (LLAMA_ROPE_TYPE_NORM), so its
// converter permutes q/k rows (and biases) into the interleaved order (model/rope_layout.h); the
// Qwen architectures use NEOX RoPE (rotate-half, the HF order) and are stored as HF has them.
// Routing read back: "llama" with experts renormalises the top-k (Mixtral), qwen2moe does not
// (llama.cpp's build_qwen2moe), qwen3moe does.
// Sliding window: none of these architectures carries one in llama.cpp (c392e50, and its
// converter writes none for them); a model read from GGUF attends to its whole context.
//
// Thread-safety: the table is immutable.
#pragma once
#include <string>

#include "model/config.h"

namespace sr {

enum class GgufBias : uint8_t { Never, Optional, Required };
// Which expert keys the converter writes: Mixtral's (count and used count, feed_forward_length
// is each expert's width) or Qwen's (plus the experts' and shared expert's widths).
enum class GgufExpertKeys : uint8_t { None, Llama, Qwen };

struct GgufArch {
  Arch family;                  // the model family this row writes (model/config.h)
  const char* name;             // general.architecture and the key prefix: "qwen2"
  bool interleaved_rope;        // q/k rows stored in the interleaved RoPE order
  GgufBias qkv_bias;            // attn_{q,k,v}.bias
  bool qk_norm;                 // attn_{q,k}_norm.weight
  bool experts;                 // MoE blocks (stacked ffn_*_exps, ffn_gate_inp)
  bool shared_expert;           // ffn_{gate,up,down}_shexp, ffn_gate_inp_shexp
  GgufExpertKeys expert_keys;
  bool norm_topk_prob;          // routing of a file read back (see above)
  bool llama_keys;              // vocab_size, rope.dimension_count, rope.scaling (LlamaModel's)
  bool c392e50_loads;           // the llama.cpp build in ../shared (c392e50) knows the architecture
};

// The row a model family is written as (Mistral and Mixtral as "llama").
const GgufArch& gguf_arch_of(Arch family);

// The row of GGUF architecture `name` for a file with (has_experts) or without experts; nullptr
// if we do not read such files. "llama" with experts is Mixtral.
const GgufArch* find_gguf_arch(const std::string& name, bool has_experts);

// "llama, qwen2, qwen3, qwen2moe, qwen3moe": for messages.
std::string gguf_arch_names();

}  // namespace sr
