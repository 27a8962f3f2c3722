#include "alloc/refine.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "alloc/measured_kld.h"
#include "common/error.h"

namespace sr {
namespace {

int item_option(const AllocProblem& p, const Allocation& a, size_t item) { return a.option[p.items[item][0]]; }

// `a` with item i at option k: options, bits and average updated (score left to set_score()).
Allocation with_item(const AllocProblem& p, Allocation a, size_t i, int k) {
  for (size_t l : p.items[i]) {
    a.bits += p.cost[l][size_t(k)] - p.cost[l][size_t(a.option[l])];
    a.option[l] = k;
  }
  a.avg_bits = double(a.bits) / double(p.total_weights());
  return a;
}

void set_score(const AllocProblem& p, const ScoreTable* scores, Allocation& a) {
  a.score = std::nan("");
  if (!scores) return;
  a.score = 0;
  for (size_t l = 0; l < p.layers.size(); ++l) a.score += (*scores)[l][size_t(a.option[l])];
}

}  // namespace

RefineResult refine_allocation(const Model& model, const LayerPlan& plan, const AllocProblem& p,
                               const ScoreTable* scores, const Allocation& start, int rounds, KldProbe& probe,
                               bool progress) {
  SR_CHECK(start.option.size() == p.layers.size(), "[refine] allocation of ", start.option.size(), " layers for ",
           p.layers.size(), " candidates");
  const int64_t budget = item_budget(p, start.target_avg_bits) + p.fixed_bits;  // total bits allowed
  const int64_t evals0 = probe.evaluations();
  auto measure = [&](const Allocation& a) { return probe.kld(allocation_schemes(model, plan, p, a)); };
  RefineResult r;
  Allocation cur = start;
  double f = measure(cur);
  const double start_kld = f;
  for (int round = 0; round < rounds; ++round) {
    probe.set_base(allocation_schemes(model, plan, p, cur));
    // 1. every single change, measured.
    ScoreTable d(p.layers.size(), std::vector<double>(p.options.size(), std::nan("")));
    Allocation best = cur;
    double best_kld = f;
    for (size_t i = 0; i < p.items.size(); ++i) {
      const size_t head = p.items[i][0];
      d[head][size_t(item_option(p, cur, i))] = 0;
      for (size_t k = 0; k < p.options.size(); ++k) {
        if (!p.item_allows(i, k) || int(k) == item_option(p, cur, i)) continue;
        const Allocation alt = with_item(p, cur, i, int(k));
        const double v = measure(alt);
        d[head][k] = v - f;
        if (alt.bits <= budget && v < best_kld) {
          best = alt;
          best_kld = v;
        }
      }
    }
    // 2. the DP on the measured changes (shifted per item to be >= 0: each item takes exactly
    // one option, so a per-item constant does not move the optimum).
    ScoreTable table(p.layers.size(), std::vector<double>(p.options.size(), 0.0));
    for (size_t i = 0; i < p.items.size(); ++i) {
      const size_t head = p.items[i][0];
      double lo = std::numeric_limits<double>::infinity();
      for (size_t k = 0; k < p.options.size(); ++k)
        if (p.item_allows(i, k)) lo = std::min(lo, d[head][k]);
      for (size_t k = 0; k < p.options.size(); ++k)
        table[head][k] = p.item_allows(i, k) ? d[head][k] - lo : std::nan("");
    }
    Allocation proposal = allocate(p, &table, start.target_avg_bits, AllocatorKind::DeltaLoss);
    if (proposal.option != cur.option) {
      const double v = measure(proposal);
      if (v < best_kld) {
        best = proposal;
        best_kld = v;
      }
    }
    // 3. accept the lowest, or stop.
    if (!(best_kld < f)) break;
    cur = best;
    f = best_kld;
    r.round_kld.push_back(f);
    if (progress) std::fprintf(stderr, "refine round %d: measured KLD %.6f (start %.6f)\n", round + 1, f, start_kld);
  }
  cur.allocator = start.allocator;
  cur.target_avg_bits = start.target_avg_bits;
  cur.dp_states = start.dp_states;
  cur.measured_kld = f;
  cur.unrefined_kld = start_kld;
  cur.refine_evaluations = probe.evaluations() - evals0;
  set_score(p, scores, cur);
  r.allocation = cur;
  return r;
}

}  // namespace sr
