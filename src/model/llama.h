// The Llama-family decoder forward in libtorch, readable top to bottom:
//   h = embed(tokens)
//   for each block:  h = h + Attn(RMSNorm(h));  h = h + MLP(RMSNorm(h))
//   logits = lm_head(RMSNorm(h))
// Attention is causal GQA with RoPE in the Hugging Face "rotate_half" layout
// (pairs (i, i + hd/2)); the MLP is SwiGLU: down(silu(gate(x)) * up(x)).
// Qwen2 adds q/k/v biases, Qwen3 an RMSNorm over head_dim on q and k before RoPE.
//
// Shapes use: B batch, T tokens, D hidden, F intermediate, H heads, KV kv heads,
// hd head_dim, V vocab. Everything is fp32 unless the caller passes otherwise;
// autograd flows through every function here.
#pragma once
#include <array>
#include <functional>
#include <string>

#include "common/torch.h"
#include "model/config.h"

namespace sr {

// The seven linear projections of a decoder block, in forward order.
enum class Proj : int { Q = 0, K, V, O, Gate, Up, Down };
constexpr int kProjCount = 7;
constexpr std::array<Proj, kProjCount> kAllProjs = {Proj::Q, Proj::K, Proj::V, Proj::O,
                                                    Proj::Gate, Proj::Up, Proj::Down};
// "self_attn.q_proj", ..., "mlp.down_proj": the Hugging Face module path inside a block.
const char* proj_module(Proj p);
// "q", "k", "v", "o", "gate", "up", "down"
const char* proj_short(Proj p);
// Full HF layer name: "model.layers.<i>.<proj_module>".
std::string layer_name(int64_t block, Proj p);

struct BlockWeights {
  at::Tensor attn_norm, ffn_norm;     // [D]
  at::Tensor q_norm, k_norm;          // [hd], Qwen3 only (undefined otherwise)
  std::array<at::Tensor, kProjCount> w;  // [out, in]: Q [H*hd, D], K/V [KV*hd, D], O [D, H*hd],
                                         // Gate/Up [F, D], Down [D, F]
  std::array<at::Tensor, kProjCount> b;  // [out] or undefined (Qwen2 has Q/K/V biases)

  at::Tensor& weight(Proj p) { return w[int(p)]; }
  const at::Tensor& weight(Proj p) const { return w[int(p)]; }
};

// Called with each projection's input right before its matmul; returns the tensor
// actually multiplied (activation quantization), and lets callers observe inputs
// (imatrix collection, DeltaLoss gradients). Absent = identity.
using InputHook = std::function<at::Tensor(Proj, const at::Tensor&)>;

// cos/sin tables for positions [0, n): each [n, hd], HF layout (the hd/2 frequencies twice).
struct RopeTables {
  at::Tensor cos, sin;
};
RopeTables make_rope_tables(const ModelConfig& c, int64_t n_positions);

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);  // over the last dim

// One decoder block. x: [B, T, D]; positions: [T] int64 (same for every row),
// indices into `rope`. Returns [B, T, D].
at::Tensor block_forward(const ModelConfig& c, const BlockWeights& w, const at::Tensor& x,
                         const at::Tensor& positions, const RopeTables& rope,
                         const InputHook& hook = nullptr);

}  // namespace sr
