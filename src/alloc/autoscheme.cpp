#include "alloc/autoscheme.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "alloc/measured_kld.h"
#include "alloc/refine.h"
#include "alloc/score_cache.h"
#include "common/error.h"
#include "common/sysinfo.h"

namespace sr {
namespace {

bool needs_scores(const std::vector<AllocatorKind>& kinds) {
  return std::find(kinds.begin(), kinds.end(), AllocatorKind::DeltaLoss) != kinds.end();
}

at::Tensor calibration_tokens(const Model& model, CalibOptions co, nlohmann::json& record) {
  SR_CHECK(!co.dataset.empty(), "[autoscheme] a calibration dataset is required for DeltaLoss scoring (calib.dataset "
           "is empty)");
  SR_CHECK(std::filesystem::exists(co.dataset), "[autoscheme] calibration dataset ", co.dataset, " does not exist");
  SR_CHECK(co.nsamples >= 1 && co.seqlen >= 2, "[autoscheme] nsamples must be >= 1 and seqlen >= 2, got nsamples ",
           co.nsamples, ", seqlen ", co.seqlen);
  if (co.seqlen > model.config().max_position) {
    std::fprintf(stderr, "note: seqlen %lld exceeds the model's %lld positions; using %lld\n", (long long)co.seqlen,
                 (long long)model.config().max_position, (long long)model.config().max_position);
    co.seqlen = model.config().max_position;
  }
  CalibData d = load_calibration(model.tokenizer(), co);
  record = {{"dataset", co.dataset}, {"samples", d.tokens.size(0)}, {"seqlen", d.tokens.size(1)},
            {"mode", d.mode}, {"seed", co.seed}};
  return d.tokens;
}

void score_all(const Model& model, const AutoSchemeOptions& opt, const at::Tensor& tokens, AutoSchemeResult& r) {
  const AllocProblem& p = r.problem;
  const ScoreCache cache(opt.score_cache_dir);
  DeltaLossOptions dl;
  dl.batch_size = opt.batch_size;
  dl.weight_term = r.weight_term;
  dl.target = opt.target;
  dl.amp = opt.amp;
  dl.progress = opt.progress;
  dl.comm = opt.comm;
  r.scores.assign(p.layers.size(), std::vector<double>(p.options.size(), std::nan("")));
  for (size_t k = 0; k < p.options.size(); ++k) {
    std::vector<ScoredLayer> layers;
    std::vector<size_t> index;
    for (size_t l = 0; l < p.layers.size(); ++l)
      if (p.cost[l][k] >= 0) {
        layers.push_back({p.layers[l].name, p.layers[l].block, p.layers[l].linear});
        index.push_back(l);
      }
    OptionScores os;
    if (!layers.empty()) {
      os.scores = cached_deltaloss_scores(cache, model, layers, p.options[k].scheme, tokens, dl, &os.cache_hit);
      os.scored = true;
      for (size_t j = 0; j < index.size(); ++j) r.scores[index[j]][k] = os.scores.score[j];
    }
    if (opt.progress)
      std::fprintf(stderr, "deltaloss %s: %s, loss %.4f\n", p.options[k].name.c_str(),
                   os.cache_hit ? "from the cache" : "scored", os.scores.mean_loss);
    r.per_option.push_back(os);
  }
  r.has_scores = true;
}

// Measured KLD of every allocation not yet measured, and the best allocator per target.
void measure_allocations(const Model& model, const AutoSchemeOptions& opt, KldProbe& probe, AutoSchemeResult& r) {
  const size_t per_target = opt.allocators.size();
  for (size_t i = 0; i < r.allocations.size(); ++i) {
    Allocation& a = r.allocations[i];
    if (!std::isfinite(a.measured_kld)) a.measured_kld = probe.kld(allocation_schemes(model, r.plan, r.problem, a));
    if (i % per_target == 0) r.best.push_back(i);
    if (a.measured_kld < r.allocations[r.best.back()].measured_kld) r.best.back() = i;
  }
}

// Every DeltaLoss allocation replaced by its measured refinement.
void refine_allocations(const Model& model, const AutoSchemeOptions& opt, KldProbe& probe, AutoSchemeResult& r) {
  for (Allocation& a : r.allocations) {
    if (a.allocator != AllocatorKind::DeltaLoss) continue;
    a = refine_allocation(model, r.plan, r.problem, r.has_scores ? &r.scores : nullptr, a, opt.refine_rounds, probe,
                          opt.progress)
            .allocation;
  }
}

}  // namespace

bool AutoSchemeOptions::needs_data() const { return needs_scores(allocators) || measure_kld || refine_rounds > 0; }

AutoSchemeResult run_autoscheme(const Model& model, const AutoSchemeOptions& opt) {
  const double t0 = now_seconds();
  SR_CHECK(!opt.avg_bits.empty(), "[autoscheme] avg_bits names no target (one or more averages, e.g. 4.5, 5, 6)");
  SR_CHECK(!opt.allocators.empty(), "[autoscheme] allocators names no allocator");
  AutoSchemeResult r;
  const std::vector<AllocOption>& options = opt.options;
  PlanOptions po;
  po.scheme = preset_scheme("BF16");
  po.override_file = opt.layer_config;
  r.plan = make_layer_plan(model, po);
  r.problem = make_alloc_problem(r.plan, options, opt.fuse, opt.ignore_scale_zp_bits, opt.bit_cost);
  std::vector<QuantScheme> schemes;
  for (const AllocOption& o : options) schemes.push_back(o.scheme);
  r.weight_term = opt.weight_term || weight_term_needed(schemes);
  r.target = opt.target;
  // Range errors before the (long) scoring pass.
  for (double b : opt.avg_bits) item_budget(r.problem, b);
  at::Tensor tokens;
  SR_CHECK(opt.refine_rounds >= 0, "[autoscheme] refine_rounds must be >= 0, got ", opt.refine_rounds);
  if (opt.needs_data()) tokens = calibration_tokens(model, opt.calib, r.calibration);
  if (needs_scores(opt.allocators)) score_all(model, opt, tokens, r);
  for (double b : opt.avg_bits)
    for (AllocatorKind k : opt.allocators)
      r.allocations.push_back(allocate(r.problem, r.has_scores ? &r.scores : nullptr, b, k, opt.seed));
  if (opt.measure_kld || opt.refine_rounds > 0) {
    KldProbe probe(model, tokens, opt.batch_size, opt.measure_encoder, int64_t(1) << 30, opt.imatrix);
    if (opt.refine_rounds > 0) refine_allocations(model, opt, probe, r);
    if (opt.measure_kld) measure_allocations(model, opt, probe, r);
  }
  r.seconds = now_seconds() - t0;
  return r;
}

}  // namespace sr
