// Tensor names of llama.cpp's "llama" architecture (llama-arch.cpp LLM_TENSOR_NAMES)
// and their Hugging Face counterparts, in both directions. The per-block names come from
// the block descriptions (model/block_desc.h); the table below is what they say.
//
//   HF name                                          GGUF name
//   model.embed_tokens.weight                        token_embd.weight
//   model.norm.weight                                output_norm.weight
//   lm_head.weight                                   output.weight
//   model.layers.<i>.input_layernorm.weight          blk.<i>.attn_norm.weight
//   model.layers.<i>.post_attention_layernorm.weight blk.<i>.ffn_norm.weight
//   model.layers.<i>.self_attn.{q,k,v,o}_proj.weight blk.<i>.attn_{q,k,v,output}.weight
//   model.layers.<i>.mlp.{gate,up,down}_proj.weight  blk.<i>.ffn_{gate,up,down}.weight
//   (q/k/v biases and q/k norms map to attn_{q,k,v}.bias, attn_{q,k}_norm.weight)
//
// Thread-safety: pure functions.
#pragma once
#include <string>

namespace sr {

// GGUF name of an HF tensor name; names without a counterpart are returned unchanged
// (so a GGUF name maps to itself).
std::string gguf_tensor_name(const std::string& hf_name);

// HF name of a GGUF tensor name; names without a counterpart are returned unchanged.
std::string hf_tensor_name(const std::string& gguf_name);

// Layer index of "blk.<i>.<rest>" (GGUF) or "model.layers.<i>.<rest>" (HF); -1 for
// tensors outside the blocks (and for malformed indices).
int gguf_layer_of(const std::string& name);

}  // namespace sr
