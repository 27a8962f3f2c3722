#include "eval/perplexity.h"

#include <cmath>

#include "common/dist.h"
#include "common/error.h"
#include "common/sysinfo.h"
#include "eval/layerwise.h"
#include "eval/logits_file.h"

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

// KLD terms of one batch of rows against the base's rows `row` .. row + b.
struct BaseRows {
  at::Tensor log_probs;  // [b, S, V] float
  bool llamacpp = false;  // decoded from llama.cpp's records: leave out log p <= -16
};

BaseRows base_rows(const KldBase& base, int64_t row, int64_t b, int64_t vocab) {
  if (base.records.defined())
    return {decode_log_prob_records(base.records.narrow(0, row, b), vocab), true};
  return {base.log_probs.narrow(0, row, b), false};
}

// Per scored position of a batch of rows: KL(p_base || p_model), the NLL of the correct token
// under the model and the base, whether both rank the same token first. 1-D, contiguous.
struct PositionTerms {
  at::Tensor kld;       // double
  at::Tensor nll;       // float
  at::Tensor nll_base;  // float
  at::Tensor same;      // bool
};

PositionTerms kld_terms(const at::Tensor& logp, const at::Tensor& target, const BaseRows& base) {
  const at::Tensor& bl = base.log_probs;
  auto terms = bl.exp() * (bl - logp);
  // Exact log-probs: a float sum over the vocabulary; llama.cpp's records: its double sum.
  auto kld = base.llamacpp ? at::where(bl > -16.f, terms, at::zeros_like(terms)).to(at::kDouble).sum(-1)
                           : terms.sum(-1).to(at::kDouble);
  return {kld.reshape(-1).contiguous(), (-logp.gather(-1, target)).reshape(-1).contiguous(),
          (-bl.gather(-1, target)).to(at::kFloat).reshape(-1).contiguous(),
          (bl.argmax(-1) == logp.argmax(-1)).reshape(-1).contiguous()};
}

// The terms into the KLD figures: `kld_moments` and `top1_moments` summed as before the
// statistics existed (so those figures stay bit for bit), the rest of llama.cpp's statistics
// into `acc`, position by position.
void add_kld(KldAccumulator& acc, Moments& kld_moments, Moments& top1_moments, const PositionTerms& t) {
  kld_moments.add(t.kld);
  top1_moments.add(t.same.to(at::kDouble));
  const double* k = t.kld.data_ptr<double>();
  const float* n = t.nll.data_ptr<float>();
  const float* nb = t.nll_base.data_ptr<float>();
  const bool* st = t.same.data_ptr<bool>();
  for (int64_t i = 0; i < t.kld.numel(); ++i) acc.add(k[i], n[i], nb[i], st[i]);
}

// The figures from the running sums.
EvalResult finish(const Moments& nll, const Moments& kld, const Moments& top1, const KldAccumulator& stats,
                  bool has_base) {
  EvalResult r;
  r.tokens = nll.n;
  r.nll = nll.mean();
  r.nll_stderr = nll.stderr_();
  r.ppl = std::exp(r.nll);
  r.ppl_stderr = r.ppl * r.nll_stderr;
  if (has_base) {
    r.has_kld = true;
    r.kld_stats = stats.finish();
    r.kld = kld.mean();
    r.kld_stderr = kld.stderr_();
    r.top1 = top1.mean();
    r.top1_stderr = top1.n > 1 ? std::sqrt(r.top1 * (1 - r.top1) / double(top1.n - 1)) : 0;
  }
  return r;
}

// The evaluated model's pass; `base` may be empty (no KLD).
EvalResult score_model(const Model& model, const EvalBatch& batch, const EvalOptions& opt, const KldBase& base,
                       at::Tensor* records_out) {
  at::NoGradGuard no_grad;
  const bool has_base = base.log_probs.defined() || base.records.defined();
  const int64_t V = model.config().vocab;
  if (records_out)
    *records_out = at::empty({batch.inputs.size(0), batch.targets.size(1), logits_row_words(V)}, at::kShort);
  Moments nll, kld, top1;
  KldAccumulator stats;
  const double t0 = now_seconds();
  run_layerwise(model, batch.inputs, scored_window(batch, opt), [&](int64_t row, const at::Tensor& logits_in) {
    const at::Tensor logits = logits_in.to(at::kFloat);
    const int64_t b = logits.size(0);
    auto logp = at::log_softmax(logits, -1);  // [b, S, V]
    auto target = batch.targets.narrow(0, row, b).unsqueeze(-1);
    nll.add(-logp.gather(-1, target).reshape(-1));
    if (records_out) records_out->narrow(0, row, b).copy_(encode_log_prob_records(logits));
    if (has_base) add_kld(stats, kld, top1, kld_terms(logp, target, base_rows(base, row, b, V)));
  });
  EvalResult r = finish(nll, kld, top1, stats, has_base);
  r.chunks = batch.inputs.size(0);
  r.seconds = now_seconds() - t0;
  r.tokens_per_second = r.seconds > 0 ? double(batch.inputs.numel()) / r.seconds : 0;
  return r;
}

// score_model over ranks (EvalOptions::comm): this rank's chunks through the model, then every
// rank's per-position terms gathered, in row order, and the figures computed from all of them.
EvalResult score_model_shared(const Model& model, const EvalBatch& batch, const EvalOptions& opt,
                              const KldBase& base) {
  at::NoGradGuard no_grad;
  const bool has_base = base.log_probs.defined() || base.records.defined();
  const int64_t V = model.config().vocab, N = batch.inputs.size(0), S = batch.targets.size(1);
  const Share mine = eval_share(opt, N);
  // Per position of this rank's rows: NLL, and with a base KLD, the base's NLL, same top (0/1).
  const int64_t cols = has_base ? 4 : 1;
  at::Tensor terms = at::zeros({mine.size() * S, cols}, at::kDouble);
  const double t0 = now_seconds();
  const at::Tensor inputs = batch.inputs.narrow(0, mine.begin, mine.size());
  if (mine.size() > 0)
    run_layerwise(model, inputs, scored_window(batch, opt), [&](int64_t row, const at::Tensor& logits_in) {
      const int64_t b = logits_in.size(0);
      auto logp = at::log_softmax(logits_in.to(at::kFloat), -1);  // [b, S, V]
      auto target = batch.targets.narrow(0, mine.begin + row, b).unsqueeze(-1);
      at::Tensor out = terms.narrow(0, row * S, b * S);
      out.select(1, 0).copy_((-logp.gather(-1, target)).reshape(-1));
      if (!has_base) return;
      const PositionTerms t = kld_terms(logp, target, base_rows(base, row, b, V));
      out.select(1, 1).copy_(t.kld);
      out.select(1, 2).copy_(t.nll_base);
      out.select(1, 3).copy_(t.same);
    });
  // Doubles carry the float NLLs and the 0/1 flags exactly; every rank now holds every row.
  const at::Tensor all = gather_rows(opt.comm, terms, N * S, mine.begin * S);
  Moments nll, kld, top1;
  KldAccumulator stats;
  nll.add(all.select(1, 0).to(at::kFloat));
  if (has_base)
    add_kld(stats, kld, top1, {all.select(1, 1).contiguous(), all.select(1, 0).to(at::kFloat).contiguous(),
                               all.select(1, 2).to(at::kFloat).contiguous(), all.select(1, 3).to(at::kBool).contiguous()});
  EvalResult r = finish(nll, kld, top1, stats, has_base);
  r.chunks = N;
  r.seconds = now_seconds() - t0;
  r.tokens_per_second = r.seconds > 0 ? double(batch.inputs.numel()) / r.seconds : 0;
  return r;
}

}  // namespace

Share eval_share(const EvalOptions& opt, int64_t n) { return share_of(opt.comm, n); }

at::Tensor scored_log_probs(const Model& base, const EvalBatch& batch, const EvalOptions& opt) {
  at::NoGradGuard no_grad;
  const Share mine = eval_share(opt, batch.inputs.size(0));
  const int64_t S = batch.targets.size(1), V = base.config().vocab;
  at::Tensor out = at::empty({mine.size(), S, V}, at::kFloat);
  if (mine.size() == 0) return out;
  run_layerwise(base, batch.inputs.narrow(0, mine.begin, mine.size()), scored_window(batch, opt),
                [&](int64_t row, const at::Tensor& logits) {
                  out.narrow(0, row, logits.size(0)).copy_(at::log_softmax(logits, -1));
                });
  return out;
}

at::Tensor scored_log_prob_records(const Model& base, const EvalBatch& batch, const EvalOptions& opt) {
  SR_CHECK(!opt.comm, "[eval] log-prob records are made in one process (they are not gathered over ranks)");
  at::Tensor out;
  score_model(base, batch, opt, KldBase{}, &out);
  return out;
}

EvalResult evaluate_batch_against(const Model& model, const EvalBatch& batch, const EvalOptions& opt,
                                  const KldBase& base, at::Tensor* records_out) {
  const int64_t N = eval_share(opt, batch.inputs.size(0)).size(), S = batch.targets.size(1), V = model.config().vocab;
  SR_CHECK(!opt.comm || !records_out, "[eval] log-prob records are made in one process (they are not gathered over ranks)");
  SR_CHECK(!(base.log_probs.defined() && base.records.defined()),
           "[eval] a KLD base is log-probs or records, not both");
  const at::Tensor& t = base.records.defined() ? base.records : base.log_probs;
  if (t.defined()) {
    const int64_t width = base.records.defined() ? logits_row_words(V) : V;
    SR_CHECK(t.dim() == 3 && t.size(0) == N && t.size(1) == S, "[eval] base log-probs of shape ", t.sizes(),
             " do not cover the batch's ", N, " x ", S, " scored positions");
    SR_CHECK(t.size(2) == width, "[eval] KLD base: ", base.records.defined() ? "records" : "log-probs", " of width ",
             t.size(2), " do not fit the evaluated model's vocabulary of ", V, " (expected width ", width, ")");
  }
  return opt.comm ? score_model_shared(model, batch, opt, base) : score_model(model, batch, opt, base, records_out);
}

EvalResult evaluate_batch_against(const Model& model, const EvalBatch& batch, const EvalOptions& opt,
                                  const at::Tensor& base_log_probs) {
  return evaluate_batch_against(model, batch, opt, KldBase{base_log_probs, {}});
}

EvalResult evaluate_batch(const Model& model, const EvalBatch& batch, const EvalOptions& opt, const Model* base) {
  if (!base) return evaluate_batch_against(model, batch, opt, KldBase{});
  const double t0 = now_seconds();
  SR_CHECK(base->config().vocab == model.config().vocab, "[eval] base model ", base->path(), ": its vocabulary (",
           base->config().vocab, ") differs from the evaluated model's (", model.config().vocab, ")");
  EvalResult r = evaluate_batch_against(model, batch, opt, KldBase{scored_log_probs(*base, batch, opt), {}});
  r.seconds = now_seconds() - t0;  // includes the base model's pass
  return r;
}

EvalResult evaluate_text(const Model& model, const std::string& text, const EvalOptions& opt, const Model* base) {
  const Tokenizer& tok = model.tokenizer();
  std::vector<int32_t> ids = opt.protocol == Protocol::LlamaCpp ? tok.encode_with_bos(text) : tok.encode(text);
  return evaluate_batch(model, make_eval_batch(ids, tok.add_bos() ? tok.bos_id() : -1, opt), opt, base);
}

}  // namespace sr
