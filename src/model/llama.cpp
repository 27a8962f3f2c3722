#include "model/llama.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "common/checkpoint.h"
#include "common/error.h"
#include "model/block_checkpoint.h"

namespace sr {

// YaRN (ggml's rope_yarn, as llama.cpp runs Qwen's rope_scaling "yarn"; the same as Hugging
// Face's): pair i keeps its frequency below the correction range [lo, hi] (fast rotations),
// takes freq / factor above it, and blends linearly inside; lo/hi are the pairs that turn
// beta_fast = 32 / beta_slow = 1 times over original_max_position, rounded outwards.
static at::Tensor yarn_frequencies(const ModelConfig& c, const at::Tensor& inv) {
  const RopeScaling& s = c.rope_scaling;
  const double dims = double(c.head_dim), base = c.rope_theta, ctx = double(s.original_max_position);
  auto corr_dim = [&](double rotations) { return dims * std::log(ctx / (rotations * 2 * M_PI)) / (2 * std::log(base)); };
  const double lo = std::max(0.0, std::floor(corr_dim(32.0)));
  const double hi = std::min(dims - 1, std::ceil(corr_dim(1.0)));
  auto out = inv.clone();
  auto p = out.accessor<float, 1>();
  for (int64_t i = 0; i < c.head_dim / 2; ++i) {
    const double y = (double(i) - lo) / std::max(0.001, hi - lo);
    const double keep = 1 - std::min(1.0, std::max(0.0, y));  // 1: extrapolate (unchanged)
    p[i] = float(p[i] / s.factor * (1 - keep) + p[i] * keep);
  }
  return out;
}

// Inverse frequencies of the hd/2 rotation pairs, with Llama-3 / linear / YaRN scaling.
static at::Tensor inverse_frequencies(const ModelConfig& c) {
  const int64_t half = c.head_dim / 2;
  auto exponent = at::arange(0, c.head_dim, 2, at::kLong).to(at::kFloat) / double(c.head_dim);
  auto inv = 1.0 / at::pow(at::scalar_tensor(c.rope_theta, at::kFloat), exponent);
  const RopeScaling& s = c.rope_scaling;
  if (!s.freq_factors.empty()) {
    SR_CHECK(int64_t(s.freq_factors.size()) == half, "[rope] ", s.freq_factors.size(),
             " frequency factors for head_dim ", c.head_dim, " (expected ", half, ")");
    inv = inv / at::from_blob(const_cast<float*>(s.freq_factors.data()), {half}, at::kFloat);
  }
  if (s.type == "linear") return inv / s.factor;
  if (s.type == "yarn") return yarn_frequencies(c, inv);
  if (s.type != "llama3") return inv;
  // Llama 3.1: keep high frequencies, divide low ones by `factor`, blend in between.
  const double low_wavelen = s.original_max_position / s.low_freq_factor;
  const double high_wavelen = s.original_max_position / s.high_freq_factor;
  auto out = inv.clone();
  auto p = out.accessor<float, 1>();
  for (int64_t i = 0; i < half; ++i) {
    const double f = p[i], wavelen = 2 * M_PI / f;
    if (wavelen < high_wavelen) continue;
    if (wavelen > low_wavelen) { p[i] = float(f / s.factor); continue; }
    const double smooth = (s.original_max_position / wavelen - s.low_freq_factor) /
                          (s.high_freq_factor - s.low_freq_factor);
    p[i] = float((1 - smooth) * f / s.factor + smooth * f);
  }
  return out;
}

RopeTables make_rope_tables(const ModelConfig& c, int64_t n) {
  auto inv = inverse_frequencies(c);                           // [hd/2]
  auto angles = at::outer(at::arange(n, at::kFloat), inv);     // [n, hd/2]
  auto emb = at::cat({angles, angles}, -1);                    // [n, hd]
  if (c.rope_scaling.type == "yarn") {  // YaRN's attention factor, on q and k alike
    const double mscale = 1 + 0.1 * std::log(c.rope_scaling.factor);
    return {emb.cos() * mscale, emb.sin() * mscale};
  }
  return {emb.cos(), emb.sin()};
}

at::Tensor rms_norm(const at::Tensor& x_in, const at::Tensor& weight, double eps) {
  const at::Tensor x = x_in.to(at::kFloat);  // a bf16 input (amp's q/k) is normed in fp32, as HF's RMSNorm does
  return x * at::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps) * weight;
}

namespace {

at::Tensor project(const BlockWeights& w, int i, const at::Tensor& x, const InputHook& hook) {
  const at::Tensor in = hook ? hook(i, x) : x;
  const at::Tensor& bias = w.b[size_t(i)];
  const at::Tensor weight = w.w[size_t(i)].defined() || !w.lazy ? w.w[size_t(i)] : w.lazy(i);
  return bias.defined() ? at::linear(in, weight, bias) : at::linear(in, weight);
}

// x: [B, heads, T, hd]; cos/sin: [T, hd].
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  return x * cos + at::cat({-x2, x1}, -1) * sin;
}

// Additive mask [T, T]: 0 where query i may attend key j (j <= i, and within the
// sliding window if any), -inf elsewhere.
at::Tensor attention_mask(int64_t T, int64_t window, const at::TensorOptions& opt) {
  auto mask = at::full({T, T}, -std::numeric_limits<float>::infinity(), opt).triu(1);
  if (window > 0 && window < T) mask = mask + at::full({T, T}, -std::numeric_limits<float>::infinity(), opt).tril(-window);
  return mask;
}

// softmax(q kᵀ / √hd + mask) v for n KV heads and their query heads stacked along the token
// axis (GQA without copying k/v: one batched matmul per kv head). qg: [B, n, G*T, hd];
// k, v: [B, n, T, hd]; mask: [T, T]. Returns [B, n, G*T, hd].
at::Tensor attend(const at::Tensor& qg, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask, int64_t G) {
  const int64_t B = qg.size(0), n = qg.size(1), T = k.size(2), hd = k.size(3);
  auto scores = at::matmul(qg, k.transpose(-2, -1)) * (1.0 / std::sqrt(double(hd)));  // [B, n, G*T, T]
  scores = scores.view({B, n, G, T, T}) + mask;
  auto probs = at::softmax(scores, -1).view({B, n, G * T, T});
  return at::matmul(probs, v);
}

// attend() one KV head at a time, each recomputed in the backward (model/block_checkpoint.h).
at::Tensor attend_per_kv_head(const at::Tensor& qg, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                              int64_t G) {
  std::vector<at::Tensor> heads;
  for (int64_t j = 0; j < k.size(1); ++j) {
    auto one = [mask, G](const std::vector<at::Tensor>& in) { return std::vector<at::Tensor>{attend(in[0], in[1], in[2], mask, G)}; };
    heads.push_back(checkpoint(one, {qg.narrow(1, j, 1), k.narrow(1, j, 1), v.narrow(1, j, 1)})[0]);
  }
  return at::cat(heads, 1);
}

at::Tensor attention(const ModelConfig& c, const BlockWeights& w, const at::Tensor& x, const at::Tensor& positions,
                     const RopeTables& rope, const InputHook& hook, bool checkpointed) {
  const int64_t B = x.size(0), T = x.size(1), H = c.n_heads, KV = c.n_kv_heads, hd = c.head_dim;
  const int64_t G = H / KV;  // query heads per kv head
  auto q = project(w, llama::Q, x, hook).view({B, T, H, hd}).transpose(1, 2);   // [B, H, T, hd]
  auto k = project(w, llama::K, x, hook).view({B, T, KV, hd}).transpose(1, 2);  // [B, KV, T, hd]
  auto v = project(w, llama::V, x, hook).view({B, T, KV, hd}).transpose(1, 2);
  if (c.qk_norm) {
    q = rms_norm(q, w.norm[llama::QNorm], c.rms_eps);
    k = rms_norm(k, w.norm[llama::KNorm], c.rms_eps);
  }
  auto cos = rope.cos.index_select(0, positions), sin = rope.sin.index_select(0, positions);
  q = apply_rope(q, cos, sin);
  k = apply_rope(k, cos, sin);
  // The G query heads sharing kv head j are stacked along the token axis.
  auto qg = q.reshape({B, KV, G * T, hd});
  const at::Tensor mask = attention_mask(T, w.window, x.options());
  const at::Tensor o = checkpointed ? attend_per_kv_head(qg, k, v, mask, G) : attend(qg, k, v, mask, G);
  auto out = o.view({B, H, T, hd}).transpose(1, 2).reshape({B, T, H * hd});
  return project(w, llama::O, out, hook);
}

at::Tensor mlp(const BlockWeights& w, const at::Tensor& x, const InputHook& hook) {
  auto gate = project(w, llama::Gate, x, hook);
  auto up = project(w, llama::Up, x, hook);
  return project(w, llama::Down, at::silu(gate) * up, hook);
}

// SwiGLU over one expert's (or the shared expert's) gate, up, down at linear indices g, g+1, g+2.
at::Tensor expert_mlp(const BlockWeights& w, int g, const at::Tensor& x, const InputHook& hook) {
  return project(w, g + 2, at::silu(project(w, g, x, hook)) * project(w, g + 1, x, hook), hook);
}

}  // namespace

MoeRouting route_tokens(const MoeConfig& m, const at::Tensor& logits) {
  auto probs = at::softmax(logits.to(at::kFloat), -1);  // over all experts, in fp32 as the references
  auto [weight, expert] = at::topk(probs, m.n_used, -1);
  if (m.norm_topk_prob) weight = weight / weight.sum(-1, /*keepdim=*/true);
  return {weight, expert};
}

at::Tensor moe_ffn(const ModelConfig& c, const BlockWeights& w, const at::Tensor& x, const InputHook& hook) {
  const int64_t D = c.hidden, E = c.moe.n_experts, k = c.moe.n_used;
  const at::Tensor xf = x.reshape({-1, D});  // [N, D]
  const MoeRouting r = route_tokens(c.moe, project(w, moe::kRouter, xf, hook));
  // Each expert runs once on the rows routed to it: (token, slot) pairs sorted by expert.
  const at::Tensor flat = r.expert.reshape(-1);                                          // [N·k]
  const at::Tensor order = std::get<1>(flat.sort(c10::optional<bool>(true), 0, false));            // pair ids by expert
  const at::Tensor counts = at::bincount(flat, {}, E).to(at::kLong);
  const int64_t* n = counts.data_ptr<int64_t>();
  at::Tensor out = at::zeros_like(xf);
  for (int64_t e = 0, start = 0; e < E; start += n[e], ++e) {
    if (n[e] == 0) continue;  // an expert without tokens is not computed (nor observed by hooks)
    const at::Tensor pairs = order.narrow(0, start, n[e]);
    const at::Tensor rows = at::floor_divide(pairs, k);
    const at::Tensor y = expert_mlp(w, moe::expert_linear(e, moe::Gate), xf.index_select(0, rows), hook);
    const at::Tensor wy = y * r.weight.reshape(-1).index_select(0, pairs).unsqueeze(1).to(y.scalar_type());
    out = out.index_add(0, rows, wy.to(out.scalar_type()));  // a bf16 expert output (amp) summed in fp32
  }
  if (c.moe.shared_intermediate > 0) {
    const int g = moe::shared_linear(E, moe::Gate);
    out = out + at::sigmoid(project(w, g + 3, xf, hook)) * expert_mlp(w, g, xf, hook);
  }
  return out.view(x.sizes());
}

namespace {

// h + FFN(RMSNorm(h)): the block's second half.
at::Tensor ffn_half(const ModelConfig& c, const BlockWeights& w, const at::Tensor& h, const InputHook& hook) {
  const at::Tensor hn = rms_norm(h, w.norm[llama::FfnNorm], c.rms_eps);
  return h + (c.is_moe() && !w.dense_mlp ? moe_ffn(c, w, hn, hook) : mlp(w, hn, hook));
}

// The tensors of the feed-forward half in w: the FFN norm, then each defined weight and bias of
// the linears after o (the MLP's, or the router's, the experts' and the shared expert's).
std::vector<at::Tensor*> ffn_tensors(BlockWeights& w) {
  std::vector<at::Tensor*> out = {&w.norm[llama::FfnNorm]};
  for (size_t i = size_t(llama::O) + 1; i < w.w.size(); ++i)
    for (at::Tensor* t : {&w.w[i], &w.b[i]})
      if (t->defined()) out.push_back(t);
  return out;
}

// ffn_half recomputed in the backward. Its inputs: h, then ffn_tensors(w), which the recompute
// puts in place of the originals in a copy of w (held by value: the caller's may change).
at::Tensor ffn_half_checkpointed(const ModelConfig& c, const BlockWeights& w, const at::Tensor& h, const InputHook& hook) {
  BlockWeights held = w;
  std::vector<at::Tensor> inputs = {h};
  for (at::Tensor* t : ffn_tensors(held)) inputs.push_back(*t);
  auto fn = [&c, held, hook](const std::vector<at::Tensor>& in) {
    BlockWeights wc = held;
    std::vector<at::Tensor*> slots = ffn_tensors(wc);
    for (size_t k = 0; k < slots.size(); ++k) *slots[k] = in[1 + k];
    return std::vector<at::Tensor>{ffn_half(c, wc, in[0], hook)};
  };
  return checkpoint(fn, inputs)[0];
}

at::Tensor block_forward_impl(const ModelConfig& c, const BlockWeights& w, const at::Tensor& x, const at::Tensor& positions,
                              const RopeTables& rope, const InputHook& hook, bool checkpointed) {
  SR_CHECK(x.dim() == 3 && x.size(2) == c.hidden, "[block_forward] expected hidden [B, T, ", c.hidden,
           "], got ", x.sizes());
  auto h = x + attention(c, w, rms_norm(x, w.norm[llama::AttnNorm], c.rms_eps), positions, rope, hook, checkpointed);
  return checkpointed ? ffn_half_checkpointed(c, w, h, hook) : ffn_half(c, w, h, hook);
}

}  // namespace

at::Tensor block_forward(const ModelConfig& c, const BlockWeights& w, const at::Tensor& x,
                         const at::Tensor& positions, const RopeTables& rope, const InputHook& hook) {
  return block_forward_impl(c, w, x, positions, rope, hook, false);
}

at::Tensor block_forward_checkpointed(const ModelConfig& c, const BlockWeights& w, const at::Tensor& x,
                                      const at::Tensor& positions, const RopeTables& rope, const InputHook& hook) {
  return block_forward_impl(c, w, x, positions, rope, hook, true);
}

GraphBytes block_graph_bytes(const ModelConfig& c, int64_t rows, int64_t T, bool checkpointed) {
  // The FFN's width as tokens see it: the MLP's, or a MoE token's k experts plus the shared one.
  const int64_t F = c.is_moe() ? c.moe.n_used * c.moe.expert_intermediate + c.moe.shared_intermediate : c.intermediate;
  const int64_t tokens = rows * T, D = c.hidden, G = c.n_heads / std::max<int64_t>(c.n_kv_heads, 1);
  const int64_t scores = rows * c.n_heads * T * T;  // one [B, H, T, T] tensor
  GraphBytes g;
  if (!checkpointed) {
    g.kept = 4 * (scores + tokens * (4 * F + 16 * D));  // softmax output, MLP activations, the rest
    g.transient = 4 * (2 * scores + 2 * tokens * F);      // their gradients during the backward
  } else {
    g.kept = 4 * tokens * 16 * D;
    g.transient = 4 * std::max(tokens * (6 * F + 4 * D), 3 * rows * G * T * T);  // the FFN, or one kv head
  }
  return g;
}

}  // namespace sr
