#include "alloc/kld_probe.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "model/block_desc.h"
#include "quant/qdq.h"

namespace sr {

KldProbe::KldProbe(const Model& model, const at::Tensor& tokens, int64_t batch, ProbeEncoder encoder,
                   int64_t weight_cache_bytes, const GivenImportances* given)
    : model_(model), tokens_(tokens), batch_(batch), encoder_(encoder), wcache_limit_(weight_cache_bytes) {
  at::NoGradGuard ng;
  SR_CHECK(tokens.dim() == 2 && tokens.size(0) >= 1 && tokens.size(1) >= 2 && tokens.scalar_type() == at::kLong,
           "[autoscheme] expected calibration tokens [N >= 1, T >= 2] int64, got ", tokens.sizes());
  SR_CHECK(batch >= 1, "[autoscheme] batch must be positive, got ", batch);
  const int64_t N = tokens.size(0), T = tokens.size(1);
  positions_ = at::arange(T, at::kLong);
  const RopeTables& rope = model.rope(T);
  imatrix_.clear();
  imatrix_tokens_.clear();
  for (int64_t b = 0; b < model.config().n_layers; ++b) {
    const size_t n_linears = model.block_desc(b).linears.size();
    imatrix_.emplace_back(n_linears);
    imatrix_tokens_.emplace_back(n_linears, N * T);
  }
  // Σx² is kept under RTN too: the GGUF types without a plain rounding (IQ2_XXS, IQ2_XS, IQ2_S,
  // IQ1_S) are measured with their imatrix search under either encoder (quantize_weight).
  const bool collect_own = !given;
  if (given)
    for (int64_t b = 0; b < model.config().n_layers; ++b)
      for (size_t p = 0; p < model.block_desc(b).linears.size(); ++p) {
        auto it = given->find(linear_name(model.block_desc(b), b, int(p)));
        imatrix_tokens_[size_t(b)][p] = it == given->end() ? 0 : it->second.tokens;
        if (it != given->end()) imatrix_[size_t(b)][p] = it->second.sum_sq.to(at::kFloat);
      }
  for (int64_t r = 0; r < N; r += batch) {
    at::Tensor h = model.embed(tokens.narrow(0, r, std::min(batch, N - r)));
    for (int64_t b = 0; b < model.config().n_layers; ++b) {
      auto& im = imatrix_[size_t(b)];
      InputHook collect = [&im](int p, const at::Tensor& x) {  // Σ x² per input channel
        const at::Tensor sq = x.reshape({-1, x.size(-1)}).pow(2).sum(0);
        at::Tensor& acc = im[size_t(p)];
        acc = acc.defined() ? acc + sq : sq;
        return x;
      };
      h = block_forward(model.config(), model.load_block(b), h, positions_, rope,
                        collect_own ? collect : InputHook());
    }
    fp_logp_.push_back(at::log_softmax(model.logits(h), -1));
  }
}

void KldProbe::check(const std::vector<BlockSchemes>& a) const {
  SR_CHECK(int64_t(a.size()) == model_.config().n_layers, "[autoscheme] an assignment covers ", a.size(), " of ",
           model_.config().n_layers, " blocks");
  for (size_t b = 0; b < a.size(); ++b)
    SR_CHECK(a[b].size() == model_.block_desc(int64_t(b)).linears.size(), "[autoscheme] an assignment gives ",
             a[b].size(), " schemes for block ", b, " of ", model_.block_desc(int64_t(b)).linears.size(), " linears");
}

const at::Tensor& KldProbe::quantized_weight(int64_t b, int p, const QuantScheme& s, const at::Tensor& w,
                                             const at::Tensor& global_scale) {
  // An NVFP4 weight depends on its fuse group's schemes through the global scale: key on it.
  const float gs = global_scale.defined() ? global_scale.item<float>() : 0.0f;
  auto key = std::make_tuple(b, p, s.to_json().dump(), gs);
  auto it = wcache_.find(key);
  if (it != wcache_.end()) return it->second;
  const bool opt = encoder_ == ProbeEncoder::OptRtn;
  const at::Tensor im = scheme_importance(imatrix_[size_t(b)][size_t(p)], s, imatrix_tokens_[size_t(b)][size_t(p)]);
  at::Tensor q = quantize_weight(w, s, opt ? WeightEncoder::OptRtn : WeightEncoder::Rtn, im, global_scale);
  const int64_t bytes = q.numel() * int64_t(q.element_size());
  if (wcache_bytes_ + bytes > wcache_limit_) {  // over the limit: hand out an uncached copy
    scratch_ = q;
    return scratch_;
  }
  wcache_bytes_ += bytes;
  return wcache_.emplace(key, q).first->second;
}

at::Tensor KldProbe::block(int64_t b, const BlockSchemes& s, const at::Tensor& h) {
  ++blocks_run_;
  BlockWeights w = model_.load_block(b);
  const BlockTensors gs = fused_global_scales(model_.block_desc(b), w, s);
  for (int p = 0; p < int(s.size()); ++p)
    if (s[size_t(p)].quantized()) w.weight(p) = quantized_weight(b, p, s[size_t(p)], w.weight(p), gs[size_t(p)]);
  return block_forward(model_.config(), w, h, positions_, model_.rope(tokens_.size(1)), block_activation_hook(s, {}, StaticRange::ThisTensor));
}

void KldProbe::set_base(const std::vector<BlockSchemes>& a) {
  at::NoGradGuard ng;
  check(a);
  base_.clear();
  base_inputs_.clear();
  const int64_t N = tokens_.size(0);
  for (int64_t r = 0; r < N; r += batch_) {
    std::vector<at::Tensor> inputs;
    at::Tensor h = model_.embed(tokens_.narrow(0, r, std::min(batch_, N - r)));
    for (int64_t b = 0; b < model_.config().n_layers; ++b) {
      inputs.push_back(h);
      h = block(b, a[size_t(b)], h);
    }
    base_inputs_.push_back(std::move(inputs));
  }
  base_ = a;
}

double KldProbe::kld(const std::vector<BlockSchemes>& a) {
  at::NoGradGuard ng;
  check(a);
  const int64_t L = model_.config().n_layers, N = tokens_.size(0);
  // First block whose schemes differ from the base: everything before it is the base's (an
  // assignment equal to the base reruns its last block).
  int64_t first = 0;
  if (!base_.empty()) {
    while (first < L && base_[size_t(first)] == a[size_t(first)]) ++first;
    first = std::min(first, L - 1);
  }
  double kl_sum = 0;
  size_t k = 0;
  for (int64_t r = 0; r < N; r += batch_, ++k) {
    at::Tensor h = base_.empty() ? model_.embed(tokens_.narrow(0, r, std::min(batch_, N - r)))
                                 : base_inputs_[k][size_t(first)];
    for (int64_t b = first; b < L; ++b) h = block(b, a[size_t(b)], h);
    const at::Tensor& fp = fp_logp_[k];
    kl_sum += (fp.exp() * (fp - at::log_softmax(model_.logits(h), -1))).sum(at::kDouble).item<double>();
  }
  ++evaluations_;
  return kl_sum / double(N * tokens_.size(1));
}

}  // namespace sr
