// What a decoder block holds: one description per architecture family, read by every stage
// (loading, tuning, allocation, export, evaluation). A block is a list of linears and a list
// of norms; stages iterate the lists and never assume how many linears a block has.
//
// The Llama family (Llama, Mistral, Qwen2, Qwen3), in forward order:
//
//   label  HF module           GGUF stem     [out, in]   input    fused  bias    RoPE rows
//   q      self_attn.q_proj    attn_q        [H·hd, D]   attn_in  qkv    Qwen2   H heads
//   k      self_attn.k_proj    attn_k        [KV·hd, D]  attn_in  qkv    Qwen2   KV heads
//   v      self_attn.v_proj    attn_v        [KV·hd, D]  attn_in  qkv    Qwen2
//   o      self_attn.o_proj    attn_output   [D, H·hd]   attn_out
//   gate   mlp.gate_proj       ffn_gate      [F, D]      ffn_in   gate_up
//   up     mlp.up_proj         ffn_up        [F, D]      ffn_in   gate_up
//   down   mlp.down_proj       ffn_down      [D, F]      ffn_act
//
//   norm    HF module                  GGUF stem     size  present
//   attn    input_layernorm            attn_norm     D     always
//   ffn     post_attention_layernorm   ffn_norm      D     always
//   q       self_attn.q_norm           attn_q_norm   hd    Qwen3
//   k       self_attn.k_norm           attn_k_norm   hd    Qwen3
//
// A mixture-of-experts block (config.h MoeConfig) keeps q, k, v, o and the norms and replaces
// gate, up, down by, in this order (a dense block inside a MoE model, ModelConfig::sparse_block
// false, is the Llama table above with the config's intermediate size):
//
//   label        HF module (Qwen; Mixtral)                            GGUF stem              [out, in]
//   router       mlp.gate; block_sparse_moe.gate                      ffn_gate_inp           [E, D]
//   exp<e>.gate  mlp.experts.<e>.gate_proj; block_sparse_moe.experts.<e>.w1   ffn_gate_exps[e]  [Fe, D]
//   exp<e>.up    mlp.experts.<e>.up_proj;   ....experts.<e>.w3        ffn_up_exps[e]         [Fe, D]
//   exp<e>.down  mlp.experts.<e>.down_proj; ....experts.<e>.w2        ffn_down_exps[e]       [D, Fe]
//   shexp.gate   mlp.shared_expert.gate_proj  (Qwen2-MoE)             ffn_gate_shexp         [Fs, D]
//   shexp.up     mlp.shared_expert.up_proj                            ffn_up_shexp           [Fs, D]
//   shexp.down   mlp.shared_expert.down_proj                          ffn_down_shexp         [D, Fs]
//   shexp.inp    mlp.shared_expert_gate                               ffn_gate_inp_shexp     [1, D]
//
// for e = 0 .. E-1. GGUF stores the experts of one projection stacked in one tensor [E, out, in]
// (LinearDesc::expert is the slice). The router and the shared expert's gate stay 16-bit unless
// a layer config says otherwise (keep_16bit), as auto-round and llama-quantize keep them. Each
// expert reads only the tokens routed to it, so each of its linears has an input of its own.
//
// Terms. input: linears with the same input id multiply the same tensor (one imatrix serves
// them; activation quantization sees the same x). fused group: members feed one fused weight in
// vLLM-style runtimes (one scheme for all, §4) and share one NVFP4 global scale (§1.4).
// RoPE rows: GGUF and llama2.c store these rows in the interleaved (adjacent pairs) RoPE layout,
// HF in rotate_half; loaders and the GGUF writer convert (model/rope_layout.h).
//
// Adding a linear to a family: a row in its table (block_desc.cpp) and its use in the forward
// (model/llama.cpp). Every other stage picks it up from here.
//
// Thread-safety: pure functions; the tables are immutable.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/config.h"

namespace sr {

// The Llama family's linears and norms by position in its description: the forward and tests
// name them with these; every other stage iterates the description.
namespace llama {
enum Linear : int { Q = 0, K, V, O, Gate, Up, Down };
enum Norm : int { AttnNorm = 0, FfnNorm, QNorm, KNorm };
}  // namespace llama

// Positions of a MoE block's feed-forward linears (table above); q, k, v, o as llama::Linear.
namespace moe {
constexpr int kRouter = 4;
enum Proj : int { Gate = 0, Up, Down };
// Expert e's projection p.
inline int expert_linear(int64_t e, Proj p) { return int(5 + 3 * e + p); }
// The shared expert's projection p, or with p = 3 its gate ("shexp.inp"); E = number of experts.
inline int shared_linear(int64_t E, int p) { return int(5 + 3 * E + p); }
}  // namespace moe

struct LinearDesc {
  std::string label;       // "q": short name for tables and reports
  std::string module;      // HF module path inside the block: "self_attn.q_proj"
  std::string gguf;        // GGUF tensor stem inside "blk.<i>.": "attn_q"
  int64_t out = 0, in = 0; // weight shape [out, in]
  int input = 0;           // input id (see Terms)
  int fuse_group = -1;     // fused group id, -1 if none (see Terms)
  bool bias = false;       // carries a bias [out]
  int64_t rope_heads = 0;  // > 0: rows form this many RoPE heads of head_dim (see Terms)
  int64_t expert = -1;     // >= 0: expert index, the slice of the stacked GGUF tensor `gguf`
  bool keep_16bit = false; // a router: stays 16-bit unless a layer config names it
};

struct NormDesc {
  std::string label;       // "attn"
  std::string module;      // HF module path inside the block: "input_layernorm"
  std::string gguf;        // GGUF stem: "attn_norm"
  int64_t size = 0;        // weight shape [size]
  bool present = true;     // false: this family member has no such norm (tensor left undefined)
};

struct BlockDesc {
  std::vector<LinearDesc> linears;  // forward order
  std::vector<NormDesc> norms;

  int64_t count() const { return int64_t(linears.size()); }
  // Index of the linear with this label or HF module path; -1 if none.
  int find(const std::string& label_or_module) const;
};

// Block `block` of `c`'s architecture with its sizes filled in from `c`. The blocks of a model
// share one description, except in a MoE model with dense blocks (MoeConfig::dense_blocks),
// whose dense blocks hold the Llama table's MLP.
BlockDesc describe_block(const ModelConfig& c, int64_t block);

// The descriptions of every block of a model, indexed by block: one description per kind of
// block (two in a MoE model with dense blocks, else one), shared by the blocks of that kind.
struct BlockDescs {
  std::vector<BlockDesc> kinds;  // distinct descriptions
  std::vector<int> kind_of;      // [n_layers]: block -> index into kinds

  // Block `block`'s description; throws sr::Error when out of range.
  const BlockDesc& operator[](int64_t block) const;
  int64_t size() const { return int64_t(kind_of.size()); }
  // The description with the most linears (a MoE model's sparse block): tables whose columns are
  // one block's linears use it.
  const BlockDesc& widest() const;
};
BlockDescs describe_blocks(const ModelConfig& c);

// "model.layers.<block>." : the HF name prefix of a block's tensors.
std::string block_prefix(int64_t block);
// Full HF module name of linear `i`: "model.layers.<block>.<module>".
std::string linear_name(const BlockDesc& d, int64_t block, int i);

// (HF suffix, GGUF suffix) of every per-block tensor any dense family holds
// ("self_attn.q_proj.weight", "attn_q.weight"; biases and norms included): the name map of
// model/gguf_names.h. Experts have no one-to-one GGUF name (they are stacked).
const std::vector<std::pair<std::string, std::string>>& block_tensor_name_pairs();

}  // namespace sr
