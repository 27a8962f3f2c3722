// DeltaLoss cost and quality, for docs/results-mixed-precision.md.
//
//   deltaloss_bench time  MODEL DATASET OPTION [nsamples seqlen batch]
//       one DeltaLoss scoring pass of OPTION vs one plain full-graph forward+backward of the
//       model over the same calibration batches: seconds, ratio, peak RSS of each (run each
//       mode in its own process for clean peaks: `time-score` / `time-reference`).
//   deltaloss_bench kld   MODEL DATASET CONFIG.json...
//       KLD to full precision on the calibration tokens of each per-layer scheme file (16 × 256).
//   deltaloss_bench rank  MODEL DATASET LOW HIGH [nsamples seqlen batch]
//       how well the scores predict measured loss changes on the calibration data:
//       (a) single-layer quantization with LOW: Spearman ρ(score_LOW, L(ℓ alone in LOW) − L_fp);
//       Each change is measured as the calibration loss (next-token CE; noisy at 16 × 256 tokens)
//       and as the KL divergence to the full-precision model on the same tokens.
//       Environment: DELTALOSS_TARGET=fp scores against the FP model (DeltaLossTarget), and
//       DELTALOSS_WEIGHT_TERM=1 forces the weight term on.
//       (b) upgrades in the all-LOW model: ρ(score_LOW − score_HIGH, L(all LOW) − L(all LOW but ℓ
//           in HIGH)) — the quantity the DP trades against bits.
//   deltaloss_bench exhaustive MODEL DATASET LOW HIGH TARGET OUT.json [nsamples seqlen batch]
//       every allocation of LOW/HIGH within TARGET average bits (all sets of layers raised to
//       HIGH that fit, not only maximal ones: upgrades can do harm), each measured as KLD to full
//       precision on the calibration tokens (RTN, alloc/kld_probe.h); prints the best ones and
//       the share of all-LOW's KLD they recover, and writes the best as a per-layer scheme file
//       OUT.json. Feasible only when few upgrades fit.
// The weight term follows §4.4 for the pair {LOW, HIGH}.
#include <malloc.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <numeric>
#include <string>

#include "alloc/allocation.h"
#include "alloc/deltaloss.h"
#include "alloc/kld_probe.h"
#include "alloc/measured_kld.h"
#include "cli/flag_values.h"
#include "common/sysinfo.h"
#include "quant/qdq.h"
#include "tokenizer/calibration.h"
#include "quant/layer_plan.h"
#include "calib_effect.h"
#include "testutil.h"

using namespace sr;

namespace {

std::vector<ScoredLayer> all_layers(const Model& m) {
  std::vector<ScoredLayer> out;
  for (int64_t b = 0; b < m.config().n_layers; ++b)
    for (int p = 0; p < int(m.block_desc(b).linears.size()); ++p) out.push_back({linear_name(m.block_desc(b), b, p), b, p});
  return out;
}

using test::calib_effect;
using Effect = test::CalibEffect;

// If upgrade gains added up, which share of all-LOW's KLD could an allocation recover at each
// target? The DP run once on the measured gains (an oracle) and once on the DeltaLoss scores.
void additive_bound(const Model& m, const QuantScheme& lo, const QuantScheme& hi, const std::vector<double>& s_lo,
                    const std::vector<double>& s_hi, const std::vector<double>& gain, double kld_lo) {
  const LayerPlan plan = make_layer_plan(m, {preset_scheme("BF16"), "", false});
  const AllocProblem p = make_alloc_problem(plan, {{"lo", lo}, {"hi", hi}}, FusePolicy::Off, false);
  ScoreTable oracle(p.layers.size(), std::vector<double>(2, 0.0)), scores(p.layers.size(), std::vector<double>(2));
  const double gmin = *std::min_element(gain.begin(), gain.end());
  for (size_t l = 0; l < p.layers.size(); ++l) {
    oracle[l][0] = gain[l] - std::min(0.0, gmin);  // shifted to be >= 0; the shift is the same for every layer
    oracle[l][1] = -std::min(0.0, gmin);
    scores[l] = {s_lo[l], s_hi[l]};
  }
  const BudgetRange r = budget_range(p);
  for (double t : {r.min_avg + 0.25, r.min_avg + 0.75, r.min_avg + 1.75}) {
    double sum[2] = {0, 0};
    const ScoreTable* tables[2] = {&oracle, &scores};
    for (int k = 0; k < 2; ++k) {
      const Allocation a = allocate(p, tables[k], t, AllocatorKind::DeltaLoss);
      for (size_t l = 0; l < p.layers.size(); ++l) sum[k] += a.option[l] == 1 ? gain[l] : 0.0;
    }
    std::printf("target %.2f bits: additive KLD recovery, oracle %.1f%%, DeltaLoss %.1f%% of %.6f\n", t,
                100 * sum[0] / kld_lo, 100 * sum[1] / kld_lo, kld_lo);
  }
}

int rank(const Model& m, const at::Tensor& tokens, int64_t batch, const QuantScheme& lo, const QuantScheme& hi) {
  DeltaLossOptions opt;
  opt.batch_size = batch;
  opt.weight_term = weight_term_needed({lo, hi}) || std::getenv("DELTALOSS_WEIGHT_TERM");
  if (const char* t = std::getenv("DELTALOSS_TARGET"); t && std::string(t) == "fp")
    opt.target = DeltaLossTarget::FullPrecision;
  opt.progress = false;
  const auto layers = all_layers(m);
  const auto s_lo = deltaloss_scores(m, layers, lo, tokens, opt).score;
  const auto s_hi = deltaloss_scores(m, layers, hi, tokens, opt).score;
  const QuantScheme fp = preset_scheme("BF16");
  const Effect base = calib_effect(m, tokens, batch, [&](int) { return fp; }, at::Tensor());
  const Effect all_lo = calib_effect(m, tokens, batch, [&](int) { return lo; }, base.logp);
  std::vector<double> single, upgrade, single_kld, upgrade_kld, pred;
  for (int l = 0; l < int(layers.size()); ++l) {
    const Effect one = calib_effect(m, tokens, batch, [&](int k) { return k == l ? lo : fp; }, base.logp);
    const Effect up = calib_effect(m, tokens, batch, [&](int k) { return k == l ? hi : lo; }, base.logp);
    single.push_back(one.loss - base.loss);
    upgrade.push_back(all_lo.loss - up.loss);
    single_kld.push_back(one.kld);
    upgrade_kld.push_back(all_lo.kld - up.kld);
    pred.push_back(s_lo[size_t(l)] - s_hi[size_t(l)]);
    std::printf("%-34s score %-9.4g %-9.4g | single dL %-10.3g dKLD %-10.3g | upgrade gain dL %-10.3g dKLD %-10.3g\n",
                layers[size_t(l)].name.c_str(), s_lo[size_t(l)], s_hi[size_t(l)], single.back(), single_kld.back(),
                upgrade.back(), upgrade_kld.back());
  }
  std::printf("weight term %d; loss FP %.5f, all %s %.5f (sums over batches), KLD all %s %.6f\n", int(opt.weight_term),
              base.loss, lo.name().c_str(), all_lo.loss, lo.name().c_str(), all_lo.kld);
  std::printf("rho single-layer %s: loss %.3f, KLD %.3f\n", lo.name().c_str(), test::spearman(s_lo, single),
              test::spearman(s_lo, single_kld));
  std::printf("rho upgrade %s->%s: loss %.3f, KLD %.3f\n", lo.name().c_str(), hi.name().c_str(),
              test::spearman(pred, upgrade), test::spearman(pred, upgrade_kld));
  additive_bound(m, lo, hi, s_lo, s_hi, upgrade_kld, all_lo.kld);
  return 0;
}

// KLD to full precision on the calibration tokens of each layer config (tune/layer_plan.h files),
// weights encoded with RTN, or with opt-RTN when PROBE_ENCODER=opt_rtn (alloc/kld_probe.h).
int kld_mode(const Model& m, const at::Tensor& tokens, int64_t batch, const std::vector<std::string>& configs) {
  const QuantScheme fp = preset_scheme("BF16");
  const char* enc = std::getenv("PROBE_ENCODER");
  KldProbe probe(m, tokens, batch, cli::parse_probe_encoder(enc ? enc : "rtn"));
  for (const std::string& f : configs) {
    const LayerPlan plan = make_layer_plan(m, {fp, f, false});
    std::vector<BlockSchemes> a;
    for (int64_t b = 0; b < m.config().n_layers; ++b) a.push_back(unquantized_block(m.block_desc(b)));
    for (int64_t b = 0; b < m.config().n_layers; ++b)
      for (int p = 0; p < int(plan.blocks[b].linears.size()); ++p) a[size_t(b)][size_t(p)] = plan.find(b, p)->scheme;
    std::printf("%-60s avg bits %.4f  KLD %.6f\n", f.c_str(), plan.average_bits(), probe.kld(a));
  }
  return 0;
}

// All LOW/HIGH allocations within the target, measured (see the header).
int exhaustive(const Model& m, const at::Tensor& tokens, int64_t batch, const QuantScheme& lo, const QuantScheme& hi,
               double target, const std::string& out) {
  const LayerPlan plan = make_layer_plan(m, {preset_scheme("BF16"), "", false});
  const AllocProblem p = make_alloc_problem(plan, {{lo.name(), lo}, {hi.name(), hi}}, FusePolicy::Off, false);
  const size_t n = p.layers.size();
  int64_t slack = item_budget(p, target);  // bits left once every layer is LOW
  std::vector<int64_t> extra(n);           // bits to raise layer l
  for (size_t l = 0; l < n; ++l) {
    slack -= p.cost[l][0];
    extra[l] = p.cost[l][1] - p.cost[l][0];
  }
  std::vector<std::vector<int>> sets;
  std::vector<int> cur;
  // Depth-first over layers in forward order: take or skip each, within the slack.
  std::function<void(size_t, int64_t)> walk = [&](size_t l, int64_t left) {
    if (l == n) {
      if (!cur.empty()) sets.push_back(cur);  // the empty set is all-LOW, measured separately
      return;
    }
    if (extra[l] <= left) {
      cur.push_back(int(l));
      walk(l + 1, left - extra[l]);
      cur.pop_back();
    }
    walk(l + 1, left);
  };
  walk(0, slack);
  std::printf("%zu allocations of %s/%s within %.3f bits (all-%s aside)\n", sets.size(), lo.name().c_str(),
              hi.name().c_str(), target, lo.name().c_str());
  KldProbe probe(m, tokens, batch);
  Allocation a;
  a.target_avg_bits = target;
  a.option.assign(n, 0);
  const double kld_lo = probe.kld(allocation_schemes(m, plan, p, a));
  probe.set_base(allocation_schemes(m, plan, p, a));
  std::vector<std::pair<double, size_t>> ranked;
  const double t0 = now_seconds();
  for (size_t i = 0; i < sets.size(); ++i) {
    std::fill(a.option.begin(), a.option.end(), 0);
    for (int l : sets[i]) a.option[size_t(l)] = 1;
    ranked.push_back({probe.kld(allocation_schemes(m, plan, p, a)), i});
    if ((i + 1) % 100 == 0) std::fprintf(stderr, "%zu/%zu, %.0f s\n", i + 1, sets.size(), now_seconds() - t0);
  }
  std::sort(ranked.begin(), ranked.end());
  std::printf("all %s: KLD %.6f\n", lo.name().c_str(), kld_lo);
  for (size_t r = 0; r < std::min<size_t>(10, ranked.size()); ++r) {
    std::printf("#%zu KLD %.6f (recovers %.1f%%):", r + 1, ranked[r].first, 100 * (kld_lo - ranked[r].first) / kld_lo);
    for (int l : sets[ranked[r].second]) std::printf(" %s", p.layers[size_t(l)].name.c_str());
    std::printf("\n");
  }
  std::fill(a.option.begin(), a.option.end(), 0);
  for (int l : sets[ranked.front().second]) a.option[size_t(l)] = 1;
  a.bits = p.fixed_bits;
  for (size_t l = 0; l < n; ++l) a.bits += p.cost[l][size_t(a.option[l])];
  a.avg_bits = double(a.bits) / double(p.total_weights());
  std::ofstream(out) << layer_config_json(plan, p, a).dump(2) << "\n";
  std::printf("best written to %s (%.4f bits/weight)\n", out.c_str(), a.avg_bits);
  return 0;
}

int time_mode(const Model& m, const at::Tensor& tokens, int64_t batch, const QuantScheme& o, bool score) {
  malloc_trim(0);
  reset_peak_rss();
  const int64_t before = current_rss_bytes();
  const double t0 = now_seconds();
  if (score) {
    DeltaLossOptions opt;
    opt.batch_size = batch;
    opt.weight_term = !o.act_quantized();
    opt.progress = false;
    deltaloss_scores(m, all_layers(m), o, tokens, opt);
  } else {
    for (int64_t r = 0; r < tokens.size(0); r += batch)
      full_forward_backward(m, tokens.narrow(0, r, std::min(batch, tokens.size(0) - r)));
  }
  const double secs = now_seconds() - t0;
  std::printf("%s %s: %.3f s, peak RSS %.1f MB (growth %.1f MB over %.1f MB before)\n",
              score ? "deltaloss" : "full fwd+bwd", score ? o.name().c_str() : "(fp32)", secs,
              double(peak_rss_bytes()) / 1e6, double(peak_rss_bytes() - before) / 1e6, double(before) / 1e6);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s time-score|time-reference MODEL DATASET OPTION [nsamples seqlen batch]\n"
                         "       %s rank MODEL DATASET LOW HIGH [nsamples seqlen batch]\n"
                         "       %s exhaustive MODEL DATASET LOW HIGH TARGET OUT.json [nsamples seqlen batch]\n"
                         "       %s kld MODEL DATASET CONFIG.json...\n", argv[0], argv[0], argv[0], argv[0]);
    return 2;
  }
  configure_process(argv);
  const std::string mode = argv[1];
  const int extra = mode == "rank" ? 6 : mode == "exhaustive" ? 8 : mode == "kld" ? argc : 5;
  const int64_t n = argc > extra ? std::atoll(argv[extra]) : 16, T = argc > extra + 1 ? std::atoll(argv[extra + 1]) : 256;
  const int64_t batch = argc > extra + 2 ? std::atoll(argv[extra + 2]) : 8;
  if (const char* th = std::getenv("SIGNROUND_THREADS")) set_threads(std::atoi(th));
  auto m = Model::open(argv[2]);
  const at::Tensor tokens = load_calibration(m->tokenizer(), {argv[3], n, T, 42}).tokens;
  if (mode == "kld") return kld_mode(*m, tokens, batch, std::vector<std::string>(argv + 4, argv + argc));
  if (mode == "exhaustive")
    return exhaustive(*m, tokens, batch, parse_scheme(argv[4]), parse_scheme(argv[5]), std::atof(argv[6]), argv[7]);
  if (mode == "rank") return rank(*m, tokens, batch, parse_scheme(argv[4]), parse_scheme(argv[5]));
  if (mode == "time-score" || mode == "time-reference")
    return time_mode(*m, tokens, batch, parse_scheme(argv[4]), mode == "time-score");
  std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 2;
}
