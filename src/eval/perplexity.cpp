#include "eval/perplexity.h"

#include <cmath>

#include "common/error.h"
#include "common/sysinfo.h"
#include "eval/layerwise.h"

namespace sr {

EvalBatch make_eval_batch(const std::vector<int32_t>& ids, int32_t bos_id, const EvalOptions& opt) {
  const int64_t ctx = opt.ctx;
  SR_CHECK(ctx >= 4, "[perplexity] ctx must be at least 4, got ", ctx);
  const int64_t available = int64_t(ids.size()) / ctx;
  SR_CHECK(available >= 1, "[eval] the text has ", ids.size(), " tokens; at least ", ctx,
           " are needed for one chunk of ctx ", ctx);
  const int64_t n = opt.chunks < 0 ? available : std::min(opt.chunks, available);
  SR_CHECK(n >= 1, "[perplexity] chunks must be positive or -1 (all), got ", opt.chunks);
  auto flat = at::from_blob(const_cast<int32_t*>(ids.data()), {n * ctx}, at::kInt).to(at::kLong).view({n, ctx});
  EvalBatch b;
  if (opt.protocol == Protocol::LlamaCpp) {
    b.inputs = flat.clone();
    if (bos_id >= 0) b.inputs.select(1, 0).fill_(bos_id);  // llama.cpp: only when the vocabulary has one
    b.first = ctx / 2;
    b.targets = flat.narrow(1, b.first + 1, ctx - 1 - b.first).clone();
  } else if (bos_id < 0) {
    // No BOS to predict the first token from: score tokens 1..ctx-1 of each window.
    b.inputs = flat.clone();
    b.targets = flat.narrow(1, 1, ctx - 1).clone();
  } else {
    b.inputs = at::cat({at::full({n, 1}, bos_id, at::kLong), flat.narrow(1, 0, ctx - 1)}, 1);
    b.targets = flat.clone();
  }
  return b;
}

namespace {

// Running sums for a mean and its standard error.
struct Moments {
  double sum = 0, sum2 = 0;
  int64_t n = 0;
  void add(const at::Tensor& values) {  // 1-D, any float dtype
    auto v = values.to(at::kDouble);
    sum += v.sum().item<double>();
    sum2 += v.pow(2).sum().item<double>();
    n += v.numel();
  }
  double mean() const { return n ? sum / double(n) : 0; }
  double stderr_() const {
    if (n < 2) return 0;
    const double m = mean(), var = sum2 / double(n) - m * m;
    return var > 0 ? std::sqrt(var / double(n - 1)) : 0;
  }
};

LayerwiseOptions scored_window(const EvalBatch& batch, const EvalOptions& opt) {
  LayerwiseOptions lw;
  lw.first_position = batch.first;
  lw.position_count = batch.targets.size(1);
  lw.progress = opt.progress;
  return lw;
}

// The evaluated model's pass; `base_logp` [N, S, V] is undefined without a KLD base.
EvalResult score_model(const Model& model, const EvalBatch& batch, const EvalOptions& opt,
                       const at::Tensor& base_logp) {
  at::NoGradGuard no_grad;
  const bool has_base = base_logp.defined();
  Moments nll, kld, top1;
  const double t0 = now_seconds();
  run_layerwise(model, batch.inputs, scored_window(batch, opt), [&](int64_t row, const at::Tensor& logits) {
    const int64_t b = logits.size(0);
    auto logp = at::log_softmax(logits, -1);  // [b, S, V]
    auto target = batch.targets.narrow(0, row, b).unsqueeze(-1);
    nll.add(-logp.gather(-1, target).reshape(-1));
    if (has_base) {
      auto bl = base_logp.narrow(0, row, b);
      kld.add((bl.exp() * (bl - logp)).sum(-1).reshape(-1));
      top1.add((bl.argmax(-1) == logp.argmax(-1)).to(at::kDouble).reshape(-1));
    }
  });
  EvalResult r;
  r.tokens = nll.n;
  r.chunks = batch.inputs.size(0);
  r.nll = nll.mean();
  r.nll_stderr = nll.stderr_();
  r.ppl = std::exp(r.nll);
  r.ppl_stderr = r.ppl * r.nll_stderr;
  if (has_base) {
    r.has_kld = true;
    r.kld = kld.mean();
    r.kld_stderr = kld.stderr_();
    r.top1 = top1.mean();
    r.top1_stderr = top1.n > 1 ? std::sqrt(r.top1 * (1 - r.top1) / double(top1.n - 1)) : 0;
  }
  r.seconds = now_seconds() - t0;
  r.tokens_per_second = r.seconds > 0 ? double(batch.inputs.numel()) / r.seconds : 0;
  return r;
}

}  // namespace

at::Tensor scored_log_probs(const Model& base, const EvalBatch& batch, const EvalOptions& opt) {
  at::NoGradGuard no_grad;
  const int64_t N = batch.inputs.size(0), S = batch.targets.size(1), V = base.config().vocab;
  at::Tensor out = at::empty({N, S, V}, at::kFloat);
  run_layerwise(base, batch.inputs, scored_window(batch, opt), [&](int64_t row, const at::Tensor& logits) {
    out.narrow(0, row, logits.size(0)).copy_(at::log_softmax(logits, -1));
  });
  return out;
}

EvalResult evaluate_batch_against(const Model& model, const EvalBatch& batch, const EvalOptions& opt,
                                  const at::Tensor& base_log_probs) {
  const int64_t N = batch.inputs.size(0), S = batch.targets.size(1), V = model.config().vocab;
  SR_CHECK(base_log_probs.dim() == 3 && base_log_probs.size(0) == N && base_log_probs.size(1) == S,
           "[eval] base log-probs of shape ", base_log_probs.sizes(), " do not cover the batch's ", N, " x ", S,
           " scored positions");
  SR_CHECK(base_log_probs.size(2) == V, "[eval] base model: its vocabulary (", base_log_probs.size(2),
           ") differs from the evaluated model's (", V, ")");
  return score_model(model, batch, opt, base_log_probs);
}

EvalResult evaluate_batch(const Model& model, const EvalBatch& batch, const EvalOptions& opt, const Model* base) {
  if (!base) return score_model(model, batch, opt, at::Tensor());
  const double t0 = now_seconds();
  SR_CHECK(base->config().vocab == model.config().vocab, "[eval] base model ", base->path(), ": its vocabulary (",
           base->config().vocab, ") differs from the evaluated model's (", model.config().vocab, ")");
  EvalResult r = evaluate_batch_against(model, batch, opt, scored_log_probs(*base, batch, opt));
  r.seconds = now_seconds() - t0;  // includes the base model's pass
  return r;
}

EvalResult evaluate_text(const Model& model, const std::string& text, const EvalOptions& opt, const Model* base) {
  const Tokenizer& tok = model.tokenizer();
  std::vector<int32_t> ids = opt.protocol == Protocol::LlamaCpp ? tok.encode_with_bos(text) : tok.encode(text);
  return evaluate_batch(model, make_eval_batch(ids, tok.bos_id(), opt), opt, base);
}

}  // namespace sr
