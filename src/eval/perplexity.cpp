#include "eval/perplexity.h"

#include <cmath>

#include "common/error.h"
#include "common/sysinfo.h"
#include "eval/layerwise.h"

namespace sr {

Protocol parse_protocol(const std::string& s) {
  if (s == "llamacpp" || s == "llama.cpp") return Protocol::LlamaCpp;
  if (s == "windows") return Protocol::Windows;
  fail("--protocol must be 'llamacpp' or 'windows', got '", s, "'");
}

EvalBatch make_eval_batch(const std::vector<int32_t>& ids, int32_t bos_id, const EvalOptions& opt) {
  const int64_t ctx = opt.ctx;
  SR_CHECK(ctx >= 4, "--ctx must be at least 4, got ", ctx);
  const int64_t available = int64_t(ids.size()) / ctx;
  SR_CHECK(available >= 1, "[eval] the text has ", ids.size(), " tokens; at least ", ctx,
           " are needed for one chunk of --ctx ", ctx);
  const int64_t n = opt.chunks < 0 ? available : std::min(opt.chunks, available);
  SR_CHECK(n >= 1, "--chunks must be positive");
  auto flat = at::from_blob(const_cast<int32_t*>(ids.data()), {n * ctx}, at::kInt).to(at::kLong).view({n, ctx});
  EvalBatch b;
  if (opt.protocol == Protocol::LlamaCpp) {
    b.inputs = flat.clone();
    b.inputs.select(1, 0).fill_(bos_id);
    b.first = ctx / 2;
    b.targets = flat.narrow(1, b.first + 1, ctx - 1 - b.first).clone();
  } else {
    b.inputs = at::cat({at::full({n, 1}, bos_id, at::kLong), flat.narrow(1, 0, ctx - 1)}, 1);
    b.first = 0;
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

}  // namespace

EvalResult evaluate_batch(const Model& model, const EvalBatch& batch, const EvalOptions& opt, const Model* base) {
  at::NoGradGuard no_grad;
  const double t0 = now_seconds();
  const int64_t N = batch.inputs.size(0), S = batch.targets.size(1), V = model.config().vocab;
  if (base)
    SR_CHECK(base->config().vocab == V, "--kld-base: the base model's vocabulary (", base->config().vocab,
             ") differs from the evaluated model's (", V, ")");
  LayerwiseOptions lw;
  lw.first_position = batch.first;
  lw.position_count = S;
  lw.progress = opt.progress;
  // Base log-probs of all scored positions, when a KLD base is given.
  at::Tensor base_logp;
  if (base) {
    base_logp = at::empty({N, S, V}, at::kFloat);
    run_layerwise(*base, batch.inputs, lw, [&](int64_t row, const at::Tensor& logits) {
      base_logp.narrow(0, row, logits.size(0)).copy_(at::log_softmax(logits, -1));
    });
  }
  Moments nll, kld, top1;
  const double t_model = now_seconds();
  run_layerwise(model, batch.inputs, lw, [&](int64_t row, const at::Tensor& logits) {
    const int64_t b = logits.size(0);
    auto logp = at::log_softmax(logits, -1);  // [b, S, V]
    auto target = batch.targets.narrow(0, row, b).unsqueeze(-1);
    nll.add(-logp.gather(-1, target).reshape(-1));
    if (base) {
      auto bl = base_logp.narrow(0, row, b);
      kld.add((bl.exp() * (bl - logp)).sum(-1).reshape(-1));
      top1.add((bl.argmax(-1) == logp.argmax(-1)).to(at::kDouble).reshape(-1));
    }
  });
  EvalResult r;
  r.tokens = nll.n;
  r.chunks = N;
  r.processed_tokens = N * batch.inputs.size(1);
  r.nll = nll.mean();
  r.nll_stderr = nll.stderr_();
  r.ppl = std::exp(r.nll);
  r.ppl_stderr = r.ppl * r.nll_stderr;
  if (base) {
    r.has_kld = true;
    r.kld = kld.mean();
    r.kld_stderr = kld.stderr_();
    r.top1 = top1.mean();
    r.top1_stderr = top1.n > 1 ? std::sqrt(r.top1 * (1 - r.top1) / double(top1.n - 1)) : 0;
  }
  const double t1 = now_seconds();
  r.seconds = t1 - t0;
  r.tokens_per_second = t1 > t_model ? double(r.processed_tokens) / (t1 - t_model) : 0;
  return r;
}

EvalResult evaluate_text(const Model& model, const std::string& text, const EvalOptions& opt, const Model* base) {
  const Tokenizer& tok = model.tokenizer();
  std::vector<int32_t> ids = opt.protocol == Protocol::LlamaCpp ? tok.encode_with_bos(text) : tok.encode(text);
  return evaluate_batch(model, make_eval_batch(ids, tok.bos_id(), opt), opt, base);
}

}  // namespace sr
