#include "quant/block_quant.h"

#include <algorithm>
#include <map>

#include "quant/formats/nvfp.h"

namespace sr {

BlockSchemes unquantized_block(const BlockDesc& d) { return BlockSchemes(d.linears.size(), preset_scheme("BF16")); }

BlockTensors fused_global_scales(const BlockDesc& d, const BlockWeights& w, const BlockSchemes& s) {
  at::NoGradGuard ng;
  const size_t n = d.linears.size();
  BlockTensors gs(n);
  std::map<int, std::vector<size_t>> groups;  // fused group -> its NVFP4 members, in forward order
  for (size_t i = 0; i < n; ++i) {
    if (!s[i].quantized() || s[i].data_type != DataType::NvFp) continue;
    gs[i] = nvfp::global_scale(w.w[i]);
    if (d.linears[i].fuse_group >= 0) groups[d.linears[i].fuse_group].push_back(i);
  }
  for (const auto& [group, members] : groups) {
    if (members.size() < 2) continue;  // one member: its own scale is the fused one
    std::vector<at::Tensor> scales;
    for (size_t i : members) scales.push_back(gs[i]);
    const at::Tensor fused = nvfp::fuse_global_scales(scales);
    for (size_t i : members) gs[i] = fused;
  }
  return gs;
}

at::Tensor scheme_importance(const at::Tensor& sum_sq, const QuantScheme& s, int64_t tokens) {
  if (!sum_sq.defined() || !s.is_gguf() || tokens <= 0) return sum_sq;
  return sum_sq / double(tokens);
}

namespace {

// The GGUF types llama.cpp quantizes only with an importance matrix (IQ2_XXS, IQ2_XS, IQ2_S,
// IQ1_S) have no plain rounding: given importances, RTN means their imatrix search (the KLD
// probe and DeltaLoss measure them so; without importances their encoders refuse).
bool searched_even_under_rtn(const QuantScheme& s) {
  return s.is_gguf() && ggml_type_traits(s.ggml_type).requires_importance;
}

}  // namespace

at::Tensor quantize_weight(const at::Tensor& w, const QuantScheme& s, WeightEncoder e, const at::Tensor& importance,
                           const at::Tensor& global_scale) {
  at::NoGradGuard ng;
  if (e == WeightEncoder::OptRtn || (importance.defined() && searched_even_under_rtn(s))) return opt_rtn(w, s, importance, global_scale).w_hat;
  WeightQuantParams p;
  p.global_scale = global_scale;
  return qdq_weight(w, s, p).w_hat;
}

BlockTensors quantize_block_weights(const BlockDesc& d, BlockWeights& w, const BlockSchemes& s, WeightEncoder e,
                                    const BlockTensors& sum_sq, int64_t tokens) {
  at::NoGradGuard ng;
  const BlockTensors gs = fused_global_scales(d, w, s);
  BlockTensors fp(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const QuantScheme& sp = s[i];
    if (!sp.quantized()) continue;
    fp[i] = w.w[i];
    const bool searched = e == WeightEncoder::OptRtn || searched_even_under_rtn(sp);
    const at::Tensor im = searched && !sum_sq.empty() ? scheme_importance(sum_sq[i], sp, tokens) : at::Tensor();
    w.w[i] = quantize_weight(fp[i], sp, e, im, gs[i]);
  }
  return fp;
}

InputHook block_activation_hook(const BlockSchemes& s, const std::vector<ActQuantState>& act, StaticRange range,
                                ActCaptures* cap) {
  if (std::none_of(s.begin(), s.end(), [](const QuantScheme& x) { return x.quantized() && x.act_quantized(); }))
    return nullptr;
  if (cap) cap->assign(s.size(), ActCapture{});
  return [s, act, range, cap](int i, const at::Tensor& x) {
    const QuantScheme& sp = s[size_t(i)];
    if (!sp.quantized() || !sp.act_quantized()) return x;
    // Under amp (common/amp.h) an input may arrive in bf16; the qdq runs in fp32 all the same.
    const at::Tensor xf = x.to(at::kFloat);
    ActQuantState st = act.empty() ? ActQuantState{} : act[size_t(i)];
    if (range == StaticRange::ThisTensor && !sp.act_dynamic) st.act_max = xf.detach().abs().max();
    at::Tensor x_hat = qdq_act(xf, sp, st);
    if (cap) (*cap)[size_t(i)] = {xf.detach(), x_hat};
    return x_hat;
  };
}

}  // namespace sr
