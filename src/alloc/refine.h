// Measured refinement of an allocation (our extension to §4.6; docs/decisions.md): local search
// on the KLD to the full-precision model, measured on the calibration tokens, around the
// DeltaLoss DP's answer.
//
// Why: the DP adds per-layer scores, and quantization damage does not add up — under MX, four
// upgrades in one block can do harm while each alone helps; at 2–3 bits the first-order Taylor
// term misjudges large errors (docs/results-mixed-precision.md). Measuring catches both.
//
// One round, from the current allocation A with measured KLD f:
//   1. for every item i and every option k it allows: d[i][k] = KLD(A with i at k) − f, measured
//      (KldProbe with A as base: a change in block b reruns blocks b.. only);
//   2. the exact DP of knapsack.h on d under the same bit budget proposes A'; measure it;
//   3. A becomes the lowest of A' and the single changes of step 1 that fit the budget, if that
//      is lower than f; otherwise the search stops.
// A round costs Σ_i (options allowed by i − 1) + 1 evaluations. The result never measures worse
// than the start and never exceeds the start's budget (the target average's bits).
#pragma once
#include <vector>

#include "alloc/allocation.h"
#include "alloc/kld_probe.h"
#include "quant/layer_plan.h"

namespace sr {

struct RefineResult {
  Allocation allocation;           // refined: measured_kld, unrefined_kld (the start's) and refine_evaluations set
  std::vector<double> round_kld;   // KLD after each round that improved
};

// Refines `start` (an allocation of `p` for start.target_avg_bits) for at most `rounds` rounds.
// `scores` (optional) recomputes the refined allocation's score sum. Throws as allocate() does.
RefineResult refine_allocation(const Model& model, const LayerPlan& plan, const AllocProblem& p,
                               const ScoreTable* scores, const Allocation& start, int rounds, KldProbe& probe,
                               bool progress);

}  // namespace sr
