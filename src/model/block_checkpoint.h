// One decoder block's forward for training-like use (SignRound tuning) at long sequences, with
// recomputation bounding its autograd graph (common/checkpoint.h). Same values and gradients as
// block_forward (model/llama.h), op for op; what it changes is what the graph holds between the
// forward and the backward:
//   - the attention's scores and softmax [B, H, T, T], the largest tensors at long sequences, are
//     computed one KV head (its G = H / KV query heads) at a time and not kept: each head's are
//     recomputed when the backward reaches it. Kept: q, k, v.
//   - the feed-forward half, h + FFN(RMSNorm(h)) (the SwiGLU MLP, or a MoE block's routed experts
//     and shared expert), is recomputed whole in the backward. Kept: h. Its B × T × F
//     activations exist only while its own backward runs.
// The projections' weights are inputs of the recomputed parts, so a weight made outside (a
// quantize-dequantized ŵ) receives its gradient as usual; a MoE expert's weight made lazily
// inside (BlockWeights::lazy) is made again in the recompute, its leaves' gradients accumulated
// there.
// REQUIRES: `hook` is deterministic (it runs again in the recompute) and, like `c` and `w`, outlives the
// backward.
#pragma once
#include <cstdint>

#include "model/llama.h"

namespace sr {

at::Tensor block_forward_checkpointed(const ModelConfig& c, const BlockWeights& w, const at::Tensor& x,
                                      const at::Tensor& positions, const RopeTables& rope,
                                      const InputHook& hook = nullptr);

// Estimated peak bytes of one block's autograd graph for a forward and backward on `rows`
// samples of T tokens in fp32: what the forward keeps for the backward (`kept`) and what the
// backward of one part adds at its peak (`transient`). A unit of n blocks holds n × kept +
// transient. Counts the largest terms only (scores and softmax B·H·T², the MLP's four B·T·F, about
// sixteen B·T·D); the weights and their quantization's graph are not included.
struct GraphBytes {
  int64_t kept = 0, transient = 0;
};
GraphBytes block_graph_bytes(const ModelConfig& c, int64_t rows, int64_t T, bool checkpointed);

}  // namespace sr
