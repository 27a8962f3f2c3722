#include "quant/block_quant.h"

#include <algorithm>

#include "quant/formats/nvfp.h"

namespace sr {

const std::array<std::vector<Proj>, 2>& nv_fuse_groups() {
  static const std::array<std::vector<Proj>, 2> groups = {std::vector<Proj>{Proj::Q, Proj::K, Proj::V},
                                                          std::vector<Proj>{Proj::Gate, Proj::Up}};
  return groups;
}

BlockSchemes unquantized_block() {
  BlockSchemes s;
  s.fill(preset_scheme("BF16"));
  return s;
}

namespace {
bool is_nv(const QuantScheme& s) { return s.quantized() && s.data_type == DataType::NvFp; }
}  // namespace

BlockTensors fused_global_scales(const BlockWeights& w, const BlockSchemes& s) {
  at::NoGradGuard ng;
  BlockTensors gs;
  for (Proj p : kAllProjs)
    if (is_nv(s[int(p)])) gs[int(p)] = nvfp::global_scale(w.weight(p));
  for (const auto& group : nv_fuse_groups()) {
    std::vector<at::Tensor> members;
    for (Proj p : group)
      if (is_nv(s[int(p)])) members.push_back(gs[int(p)]);
    if (members.size() < 2) continue;  // one member: its own scale is the fused one
    const at::Tensor fused = nvfp::fuse_global_scales(members);
    for (Proj p : group)
      if (is_nv(s[int(p)])) gs[int(p)] = fused;
  }
  return gs;
}

at::Tensor scheme_importance(const at::Tensor& sum_sq, const QuantScheme& s, int64_t tokens) {
  if (!sum_sq.defined() || !s.is_gguf() || tokens <= 0) return sum_sq;
  return sum_sq / double(tokens);
}

at::Tensor quantize_weight(const at::Tensor& w, const QuantScheme& s, WeightEncoder e, const at::Tensor& importance,
                           const at::Tensor& global_scale) {
  at::NoGradGuard ng;
  if (e == WeightEncoder::OptRtn) return opt_rtn(w, s, importance, global_scale).w_hat;
  WeightQuantParams p;
  p.global_scale = global_scale;
  return qdq_weight(w, s, p).w_hat;
}

BlockTensors quantize_block_weights(BlockWeights& w, const BlockSchemes& s, WeightEncoder e, const BlockTensors& sum_sq,
                                    int64_t tokens) {
  at::NoGradGuard ng;
  const BlockTensors gs = fused_global_scales(w, s);
  BlockTensors fp;
  for (Proj p : kAllProjs) {
    const QuantScheme& sp = s[int(p)];
    if (!sp.quantized()) continue;
    fp[int(p)] = w.weight(p);
    const at::Tensor im = e == WeightEncoder::OptRtn ? scheme_importance(sum_sq[int(p)], sp, tokens) : at::Tensor();
    w.weight(p) = quantize_weight(fp[int(p)], sp, e, im, gs[int(p)]);
  }
  return fp;
}

InputHook block_activation_hook(const BlockSchemes& s, const std::array<ActQuantState, kProjCount>& act,
                                StaticRange range, ActCaptures* cap) {
  if (std::none_of(s.begin(), s.end(), [](const QuantScheme& x) { return x.quantized() && x.act_quantized(); }))
    return nullptr;
  return [s, act, range, cap](Proj p, const at::Tensor& x) {
    const QuantScheme& sp = s[int(p)];
    if (!sp.quantized() || !sp.act_quantized()) return x;
    ActQuantState st = act[int(p)];
    if (range == StaticRange::ThisTensor && !sp.act_dynamic) st.act_max = x.detach().abs().max();
    at::Tensor x_hat = qdq_act(x, sp, st);
    if (cap) (*cap)[int(p)] = {x.detach(), x_hat};
    return x_hat;
  };
}

}  // namespace sr
