#include "alloc/deltaloss.h"

#include <cmath>
#include <algorithm>
#include <cstdio>

#include "common/amp.h"
#include "common/dist.h"
#include "common/error.h"
#include "common/progress.h"
#include "common/sysinfo.h"
#include "model/block_desc.h"
#include "quant/block_quant.h"
#include "quant/qdq.h"

namespace sr {

bool weight_term_needed(const std::vector<QuantScheme>& options) {
  for (const QuantScheme& s : options)
    if (s.bits <= 8 && !s.act_quantized()) return true;
  return false;
}

nlohmann::json DeltaLossScores::to_json() const {
  nlohmann::json j = {{"score", score},         {"batches", batches},     {"skipped_batches", skipped_batches},
                      {"skipped_terms", skipped_terms}, {"mean_loss", mean_loss}, {"seconds", seconds},
                      {"peak_rss_bytes", peak_rss_bytes}};
  // Absent means fp32: the records written before amp existed read the same.
  if (amp) j["compute_dtype"] = compute_dtype_name(true);
  return j;
}

DeltaLossScores DeltaLossScores::from_json(const nlohmann::json& j) {
  DeltaLossScores s;
  try {
    s.score = j.at("score").get<std::vector<double>>();
    s.batches = j.at("batches").get<int64_t>();
    s.skipped_batches = j.at("skipped_batches").get<int64_t>();
    s.skipped_terms = j.at("skipped_terms").get<int64_t>();
    s.mean_loss = j.at("mean_loss").is_null() ? std::nan("") : j.at("mean_loss").get<double>();
    s.seconds = j.at("seconds").get<double>();
    s.peak_rss_bytes = j.at("peak_rss_bytes").get<int64_t>();
    s.amp = j.value("compute_dtype", compute_dtype_name(false)) == compute_dtype_name(true);
  } catch (const nlohmann::json::exception& e) {
    fail("[deltaloss] malformed score record: ", e.what());
  }
  return s;
}

namespace {

// Index into the scored layers of each linear of one block (-1: not scored).
using BlockSlots = std::vector<int>;

std::vector<BlockSlots> block_slots(const Model& m, const std::vector<ScoredLayer>& layers) {
  const ModelConfig& c = m.config();
  std::vector<BlockSlots> slots;
  for (int64_t b = 0; b < c.n_layers; ++b) slots.emplace_back(m.block_desc(b).linears.size(), -1);
  for (size_t i = 0; i < layers.size(); ++i) {
    const ScoredLayer& l = layers[i];
    SR_CHECK(l.block >= 0 && l.block < c.n_layers, "[deltaloss] layer ", l.name, ": block ", l.block,
             " out of range [0, ", c.n_layers, ")");
    SR_CHECK(l.linear >= 0 && l.linear < int(slots[size_t(l.block)].size()), "[deltaloss] layer ", l.name,
             ": linear ", l.linear, " out of range [0, ", slots[size_t(l.block)].size(), ")");
    SR_CHECK(slots[size_t(l.block)][size_t(l.linear)] < 0, "[deltaloss] layer ", l.name, " listed twice");
    slots[size_t(l.block)][size_t(l.linear)] = int(i);
  }
  return slots;
}

// The option on the scored linears of a block, the others left as they are.
BlockSchemes scored_schemes(const BlockSlots& s, const QuantScheme& o) {
  BlockSchemes schemes(s.size(), preset_scheme("BF16"));
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] >= 0) schemes[i] = o;
  return schemes;
}

// Replaces the scored layers' weights by their RTN qdq under `o` as every stage quantizes a
// block (quant/block_quant.h: NVFP4 global scales fused over q/k/v and gate/up). When `keep`
// is given, the full-precision weights are moved there (for W − Ŵ).
// `sum_sq` (Σx² of the block's linears over `tokens` tokens) is used by the options without a
// plain rounding only (quantize_weight).
void quantize_block(const BlockDesc& d, BlockWeights& w, const BlockSlots& s, const QuantScheme& o,
                    const BlockTensors& sum_sq, int64_t tokens, BlockTensors* keep = nullptr) {
  if (!o.quantized()) return;
  BlockTensors fp = quantize_block_weights(d, w, scored_schemes(s, o), WeightEncoder::Rtn, sum_sq, tokens);
  if (keep) *keep = std::move(fp);
}

// The activation qdq of `o` on the scored projections (static schemes: the current tensor's
// max |x| as their calibrated act_max); records x and x̂ into `cap` if given.
InputHook scoring_hook(const BlockSlots& s, const QuantScheme& o, ActCaptures* cap) {
  if (!o.act_quantized()) return nullptr;
  return block_activation_hook(scored_schemes(s, o), {}, StaticRange::ThisTensor, cap);
}

// Mean next-token cross-entropy of logits [B, T, V] against tokens [B, T].
at::Tensor causal_lm_loss(const at::Tensor& logits, const at::Tensor& tokens) {
  const int64_t V = logits.size(-1), T = logits.size(1);
  auto lp = at::log_softmax(logits.narrow(1, 0, T - 1).reshape({-1, V}), -1);
  return at::nll_loss(lp, tokens.narrow(1, 1, T - 1).reshape({-1}));
}

// Σ |g ⊙ (a − b)| in double, or NaN when g is undefined.
double abs_product_sum(const at::Tensor& g, const at::Tensor& a, const at::Tensor& b) {
  if (!g.defined()) return 0.0;
  return (g * (a - b)).abs().sum(at::kDouble).item<double>();
}

struct BatchContext {
  const Model& model;
  const std::vector<BlockSlots>& slots;
  const QuantScheme& option;
  const DeltaLossOptions& opt;
  const RopeTables& rope;
  at::Tensor positions;
  std::vector<BlockTensors> sum_sq = {};  // [block][linear] Σx², for an option that needs importances
  int64_t sum_sq_tokens = 0;
};

// The GGUF types llama.cpp quantizes only with an importance matrix (IQ2_XXS, IQ2_XS, IQ2_S,
// IQ1_S) are scored with its imatrix search, as the search's KLD probe and `quantize` write them.
bool needs_importances(const QuantScheme& o) { return o.is_gguf() && ggml_type_traits(o.ggml_type).requires_importance; }

// Σx² of every block linear's input over the FP model's pass on `tokens`, in batches.
std::vector<BlockTensors> input_sum_sq(const Model& model, const at::Tensor& tokens, int64_t batch,
                                       const BatchContext& ctx) {
  at::NoGradGuard ng;
  std::vector<BlockTensors> out(size_t(model.config().n_layers));
  for (int64_t r = 0; r < tokens.size(0); r += batch) {
    at::Tensor h = model.embed(tokens.narrow(0, r, std::min(batch, tokens.size(0) - r)));
    for (int64_t b = 0; b < model.config().n_layers; ++b) {
      BlockTensors& acc = out[size_t(b)];
      acc.resize(model.block_desc(b).linears.size());
      InputHook collect = [&acc](int p, const at::Tensor& x) {
        const at::Tensor sq = x.reshape({-1, x.size(-1)}).to(at::kFloat).pow(2).sum(0);
        acc[size_t(p)] = acc[size_t(p)].defined() ? acc[size_t(p)] + sq : sq;
        return x;
      };
      h = block_forward(model.config(), model.load_block(b), h, ctx.positions, ctx.rope, collect);
    }
  }
  return out;
}

const BlockTensors& block_sum_sq(const BatchContext& ctx, int64_t b) {
  static const BlockTensors kNone;
  return ctx.sum_sq.empty() ? kNone : ctx.sum_sq[size_t(b)];
}

// Forward without a graph; returns every block's input and the final hidden state.
std::vector<at::Tensor> forward_storing_inputs(const BatchContext& ctx, const at::Tensor& tokens, at::Tensor& h) {
  at::NoGradGuard ng;
  const ModelConfig& c = ctx.model.config();
  std::vector<at::Tensor> inputs(size_t(c.n_layers));
  h = ctx.model.embed(tokens);
  for (int64_t b = 0; b < c.n_layers; ++b) {
    inputs[size_t(b)] = h;
    BlockWeights w = ctx.model.load_block(b);
    quantize_block(ctx.model.block_desc(b), w, ctx.slots[size_t(b)], ctx.option, block_sum_sq(ctx, b),
                   ctx.sum_sq_tokens);
    h = block_forward(c, w, h, ctx.positions, ctx.rope, scoring_hook(ctx.slots[size_t(b)], ctx.option, nullptr));
  }
  return inputs;
}

// Replays block b on its stored input with autograd on; adds its layers' terms to `score`
// and returns ∂L/∂(block input) (undefined for block 0).
at::Tensor replay_block(const BatchContext& ctx, int64_t b, const at::Tensor& input, const at::Tensor& grad_out,
                        std::vector<double>& score, int64_t& skipped_terms) {
  const BlockSlots& s = ctx.slots[size_t(b)];
  const bool wterm = ctx.opt.weight_term && ctx.option.quantized();
  BlockWeights w = ctx.model.load_block(b);
  BlockTensors fp;
  quantize_block(ctx.model.block_desc(b), w, s, ctx.option, block_sum_sq(ctx, b), ctx.sum_sq_tokens,
                 wterm ? &fp : nullptr);
  std::vector<at::Tensor> wrt;  // what autograd::grad differentiates with respect to
  std::vector<std::pair<int, int>> what;  // (linear, 0 = weight | 1 = activation) per entry after the input
  at::Tensor x_in = input.detach().requires_grad_(true);
  if (b > 0) wrt.push_back(x_in);
  const int n = int(s.size());
  for (int p = 0; p < n; ++p)
    if (wterm && s[size_t(p)] >= 0) w.weight(p) = w.weight(p).detach().requires_grad_(true);
  ActCaptures cap;
  at::Tensor out = block_forward(ctx.model.config(), w, x_in, ctx.positions, ctx.rope, scoring_hook(s, ctx.option, &cap));
  for (int p = 0; p < n; ++p) {
    if (s[size_t(p)] < 0) continue;
    if (wterm) { wrt.push_back(w.weight(p)); what.push_back({p, 0}); }
    if (!cap.empty() && cap[size_t(p)].x_hat.defined()) { wrt.push_back(cap[size_t(p)].x_hat); what.push_back({p, 1}); }
  }
  if (wrt.empty()) return {};
  auto grads = torch::autograd::grad({out}, wrt, {grad_out}, /*retain_graph=*/false, /*create_graph=*/false,
                                     /*allow_unused=*/true);
  const size_t first = b > 0 ? 1 : 0;
  at::NoGradGuard ng;
  for (size_t e = 0; e < what.size(); ++e) {
    const auto [p, kind] = what[e];
    const at::Tensor& g = grads[first + e];
    const double term = kind == 0 ? abs_product_sum(g, fp[size_t(p)], w.weight(p).detach())
                                  : abs_product_sum(g, cap[size_t(p)].x, cap[size_t(p)].x_hat.detach());
    if (std::isfinite(term)) score[size_t(s[size_t(p)])] += term;
    else ++skipped_terms;
  }
  return b > 0 ? grads[0] : at::Tensor();
}

// Log-probabilities [B, T, V] of the unquantized model (no graph).
at::Tensor full_precision_log_probs(const BatchContext& ctx, const at::Tensor& tokens) {
  at::NoGradGuard ng;
  AmpScope fp32(ctx.model.final_norm().device(), false);  // the target: full precision under amp too
  const ModelConfig& c = ctx.model.config();
  at::Tensor h = ctx.model.embed(tokens);
  for (int64_t b = 0; b < c.n_layers; ++b) h = block_forward(c, ctx.model.load_block(b), h, ctx.positions, ctx.rope);
  return at::log_softmax(ctx.model.logits(h), -1);
}

// The loss L of the batch from the quantized model's logits [B, T, V] (see DeltaLossTarget).
at::Tensor batch_loss(const BatchContext& ctx, const at::Tensor& bf16_or_fp32_logits, const at::Tensor& tokens) {
  const at::Tensor logits = bf16_or_fp32_logits.to(at::kFloat);  // the loss in fp32 under amp
  if (ctx.opt.target == DeltaLossTarget::Labels) return causal_lm_loss(logits, tokens);
  const at::Tensor fp = full_precision_log_probs(ctx, tokens);
  return (fp.exp() * (fp - at::log_softmax(logits, -1))).sum(-1).mean();
}

// One batch: forward, head, block-by-block backward. Returns the loss (NaN: skipped); the
// batch's per-layer terms go to `batch` (left zero when skipped) and its skipped terms to `skipped`.
double score_batch(const BatchContext& ctx, const at::Tensor& tokens, std::vector<double>& batch, int64_t& skipped) {
  AmpScope amp(ctx.model.final_norm().device(), ctx.opt.amp);
  at::Tensor h;
  std::vector<at::Tensor> inputs = forward_storing_inputs(ctx, tokens, h);
  at::Tensor h_last = h.detach().requires_grad_(true);
  at::Tensor loss = batch_loss(ctx, ctx.model.logits(h_last), tokens);
  const double value = loss.item<double>();
  if (!std::isfinite(value)) return value;
  at::Tensor g = torch::autograd::grad({loss}, {h_last})[0];
  for (int64_t b = ctx.model.config().n_layers - 1; b >= 0; --b) {
    g = replay_block(ctx, b, inputs[size_t(b)], g, batch, skipped);
    inputs[size_t(b)] = at::Tensor();  // free as we go
    if (b > 0 && !g.defined()) break;  // nothing upstream needs a gradient
  }
  return value;
}

// What one batch adds to the result: its per-layer terms, its loss (NaN: skipped) and how many
// of its terms were not finite.
struct BatchTerms {
  std::vector<double> score;
  double loss = 0;
  int64_t skipped_terms = 0;
};

// Every batch's terms, in batch order: this process's when alone, else every rank's share
// gathered (a row [layers..., loss, skipped terms] per batch).
std::vector<BatchTerms> all_batches(const BatchContext& ctx, const at::Tensor& tokens, size_t layers,
                                    Progress& progress) {
  const int64_t N = tokens.size(0), bs = ctx.opt.batch_size, n_batches = (N + bs - 1) / bs;
  const Share mine = share_of(ctx.opt.comm, n_batches);
  std::vector<BatchTerms> out(static_cast<size_t>(n_batches));
  for (int64_t i = mine.begin; i < mine.end; ++i) {
    BatchTerms& t = out[size_t(i)];
    t.score.assign(layers, 0.0);
    t.loss = score_batch(ctx, tokens.narrow(0, i * bs, std::min(bs, N - i * bs)), t.score, t.skipped_terms);
    char extra[64];
    std::snprintf(extra, sizeof extra, "loss %.4f", t.loss);
    progress.update(int(i - mine.begin + 1), extra);
  }
  if (!ctx.opt.comm) return out;
  const int64_t width = int64_t(layers) + 2;
  at::Tensor rows = at::zeros({mine.size(), width}, at::kDouble);
  for (int64_t i = mine.begin; i < mine.end; ++i) {
    double* r = rows[i - mine.begin].data_ptr<double>();
    std::copy(out[size_t(i)].score.begin(), out[size_t(i)].score.end(), r);
    r[layers] = out[size_t(i)].loss;
    r[layers + 1] = double(out[size_t(i)].skipped_terms);
  }
  const at::Tensor all = gather_rows(ctx.opt.comm, rows, n_batches, mine.begin).contiguous();
  for (int64_t i = 0; i < n_batches; ++i) {
    const double* r = all[i].data_ptr<double>();
    out[size_t(i)] = {std::vector<double>(r, r + layers), r[layers], int64_t(r[layers + 1])};
  }
  return out;
}

}  // namespace

DeltaLossScores deltaloss_scores(const Model& model, const std::vector<ScoredLayer>& layers,
                                 const QuantScheme& option, const at::Tensor& tokens, const DeltaLossOptions& opt) {
  const ModelConfig& c = model.config();
  SR_CHECK(tokens.dim() == 2 && tokens.size(0) >= 1 && tokens.size(1) >= 2 && tokens.scalar_type() == at::kLong,
           "[deltaloss] expected calibration tokens [N >= 1, T >= 2] int64, got ", tokens.sizes());
  SR_CHECK(tokens.size(1) <= c.max_position, "[deltaloss] seqlen ", tokens.size(1), " exceeds the model's ",
           c.max_position, " positions");
  SR_CHECK(opt.batch_size >= 1, "[deltaloss] batch_size must be positive, got ", opt.batch_size);
  for (const ScoredLayer& l : layers) {
    SR_CHECK(l.block >= 0 && l.block < c.n_layers, "[deltaloss] layer ", l.name, ": block ", l.block,
             " out of range [0, ", c.n_layers, ")");
    const BlockDesc& d = model.block_desc(l.block);
    SR_CHECK(l.linear >= 0 && l.linear < int(d.linears.size()), "[deltaloss] layer ", l.name, ": linear ", l.linear,
             " out of range [0, ", d.linears.size(), ")");
    const LinearDesc& ld = d.linears[size_t(l.linear)];
    const FitResult f = fits(option, ld.out, ld.in);
    SR_CHECK(f.ok, "[deltaloss] option ", option.name(), " does not fit ", l.name, ": ", f.reason);
  }
  const double t0 = now_seconds();
  DeltaLossScores r;
  r.score.assign(layers.size(), 0.0);
  r.amp = opt.amp;
  if (!option.quantized() && !option.act_quantized()) return r;
  const std::vector<BlockSlots> slots = block_slots(model, layers);
  const int64_t N = tokens.size(0), T = tokens.size(1);
  BatchContext ctx{model, slots, option, opt, model.rope(T), at::arange(T, at::kLong)};
  if (needs_importances(option)) {
    ctx.sum_sq = input_sum_sq(model, tokens, opt.batch_size, ctx);
    ctx.sum_sq_tokens = N * T;
  }
  const int64_t n_batches = (N + opt.batch_size - 1) / opt.batch_size;
  Progress progress("deltaloss " + option.name() + (opt.amp ? " (bf16)" : ""),
                    int(share_of(opt.comm, n_batches).size()), opt.progress);
  double loss_sum = 0;
  for (const BatchTerms& t : all_batches(ctx, tokens, layers.size(), progress)) {
    ++r.batches;
    if (std::isfinite(t.loss)) {
      loss_sum += t.loss;
      for (size_t i = 0; i < r.score.size(); ++i) r.score[i] += t.score[i];
    } else {
      ++r.skipped_batches;
    }
    r.skipped_terms += t.skipped_terms;
  }
  const int64_t ok = r.batches - r.skipped_batches;
  r.mean_loss = ok > 0 ? loss_sum / double(ok) : std::nan("");
  if (r.skipped_batches > 0 || r.skipped_terms > 0)
    std::fprintf(stderr, "deltaloss %s: skipped %lld of %lld batches (non-finite loss) and %lld layer terms "
                 "(non-finite gradients)\n", option.name().c_str(), (long long)r.skipped_batches,
                 (long long)r.batches, (long long)r.skipped_terms);
  r.seconds = now_seconds() - t0;
  r.peak_rss_bytes = peak_rss_bytes();
  return r;
}

double full_forward_backward(const Model& model, const at::Tensor& tokens) {
  const ModelConfig& c = model.config();
  const int64_t T = tokens.size(1);
  const RopeTables& rope = model.rope(T);
  const at::Tensor pos = at::arange(T, at::kLong);
  std::vector<BlockWeights> blocks;
  std::vector<at::Tensor> params;
  at::Tensor h = model.embed(tokens);
  for (int64_t b = 0; b < c.n_layers; ++b) {
    blocks.push_back(model.load_block(b));
    for (at::Tensor& w : blocks.back().w) {
      w.requires_grad_(true);
      params.push_back(w);
    }
    h = block_forward(c, blocks.back(), h, pos, rope);
  }
  at::Tensor loss = causal_lm_loss(model.logits(h), tokens);
  loss.backward();
  return loss.item<double>();
}

}  // namespace sr
