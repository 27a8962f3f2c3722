// The Llama-family decoder forward in libtorch, readable top to bottom:
//   h = embed(tokens)
//   for each block:  h = h + Attn(RMSNorm(h));  h = h + MLP(RMSNorm(h))
//   logits = lm_head(RMSNorm(h))
// Attention is causal GQA with RoPE in the Hugging Face "rotate_half" layout
// (pairs (i, i + hd/2)); the MLP is SwiGLU: down(silu(gate(x)) * up(x)), or in a mixture-of-
// experts block a routed sum of such MLPs (moe_ffn).
// Qwen2 adds q/k/v biases, Qwen3 an RMSNorm over head_dim on q and k before RoPE.
//
// Shapes use: B batch, T tokens, D hidden, F intermediate, H heads, KV kv heads,
// hd head_dim, V vocab. Everything is fp32 unless the caller passes otherwise;
// autograd flows through every function here.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "common/torch.h"
#include "model/block_desc.h"
#include "model/config.h"

namespace sr {

// One block's weights, in the order of its description (model/block_desc.h).
struct BlockWeights {
  std::vector<at::Tensor> w;     // per linear: [out, in] (undefined where a caller skipped it)
  std::vector<at::Tensor> b;     // per linear: [out], undefined without a bias
  std::vector<at::Tensor> norm;  // per norm: [size], undefined where the family member has none
  // When set, a linear whose w[i] is undefined is made by lazy(i) where the forward multiplies
  // it: tuning qdq's a MoE expert only when tokens reach it.
  std::function<at::Tensor(int)> lazy;
  // The block's attention window (ModelConfig::window_of its layer; 0: the whole context), set by
  // Model::load_block: the window is the layer's, and the forward sees only the block.
  int64_t window = 0;
  // A dense block inside a MoE model (ModelConfig::sparse_block false): its feed-forward is the
  // Llama MLP, not moe_ffn. Set by Model::load_block, as the window is.
  bool dense_mlp = false;

  at::Tensor& weight(int i) { return w[size_t(i)]; }
  const at::Tensor& weight(int i) const { return w[size_t(i)]; }
};

// Called with each linear's index (in the block description) and input right before its
// matmul; returns the tensor actually multiplied (activation quantization), and lets callers
// observe inputs (imatrix collection, DeltaLoss gradients). Absent = identity.
using InputHook = std::function<at::Tensor(int linear, const at::Tensor&)>;

// cos/sin tables for positions [0, n): each [n, hd], HF layout (the hd/2 frequencies twice).
struct RopeTables {
  at::Tensor cos, sin;
};
RopeTables make_rope_tables(const ModelConfig& c, int64_t n_positions);

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);  // over the last dim

// A MoE block's routing of N tokens (config.h MoeConfig): each token's k experts, largest
// weight first, and their weights.
struct MoeRouting {
  at::Tensor weight;  // [N, k] fp32
  at::Tensor expert;  // [N, k] int64
};
// logits: [N, E] router outputs.
MoeRouting route_tokens(const MoeConfig& m, const at::Tensor& logits);

// A sparse block's feed-forward on x [.., D] (normed): Σ over each token's experts of weight ×
// expert(x), each expert computed once on the tokens routed to it (hooks see those rows only;
// an expert without tokens is skipped), plus the gated shared expert. Returns x's shape.
at::Tensor moe_ffn(const ModelConfig& c, const BlockWeights& w, const at::Tensor& x, const InputHook& hook = nullptr);

// One decoder block. x: [B, T, D]; positions: [T] int64 (same for every row),
// indices into `rope`; w laid out as describe_block(c, its block) says. Returns [B, T, D].
at::Tensor block_forward(const ModelConfig& c, const BlockWeights& w, const at::Tensor& x,
                         const at::Tensor& positions, const RopeTables& rope,
                         const InputHook& hook = nullptr);

}  // namespace sr
