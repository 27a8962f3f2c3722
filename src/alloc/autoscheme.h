// AutoScheme end to end (spec §4): candidate layers and fixed ones, DeltaLoss scores per option
// (cached), then one allocation per (target average, allocator). What `signround autoscheme`
// prints and writes, and what `signround quantize --avg_bits` quantizes with.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "alloc/allocation.h"
#include "alloc/deltaloss.h"
#include "alloc/kld_probe.h"
#include "tokenizer/calibration.h"

namespace sr {

struct AutoSchemeOptions {
  std::vector<double> avg_bits;          // one allocation per target and allocator
  std::vector<AllocOption> options;      // the candidate schemes
  std::vector<AllocatorKind> allocators = {AllocatorKind::DeltaLoss};
  bool ignore_scale_zp_bits = false;
  BitCost bit_cost = BitCost::Spec;
  FusePolicy fuse = FusePolicy::Auto;
  CalibOptions calib{"", 16, 256, 42};   // §4.1 defaults: 16 × 256 tokens
  int64_t batch_size = 8;
  DeltaLossTarget target = DeltaLossTarget::Labels;
  bool amp = false;                      // DeltaLoss under bf16 autocast (DeltaLossOptions::amp)
  bool weight_term = false;              // force the weight term on (else §4.4's rule)
  std::string layer_config;              // user per-layer schemes: those layers are fixed
  std::string score_cache_dir;           // "" disables the on-disk cache
  uint64_t seed = 42;                    // random allocator
  // Measure every allocation's KLD to the FP model on the scoring tokens (alloc/measured_kld.h)
  // and, with several allocators, keep the one with the lowest per target (`best`).
  bool measure_kld = false;
  // The weight encoder of those measurements (alloc/kld_probe.h).
  ProbeEncoder measure_encoder = ProbeEncoder::Rtn;
  // A given imatrix for the OptRtn measurements instead of the probe's own (null: collect).
  const GivenImportances* imatrix = nullptr;
  // Rounds of measured refinement of every DeltaLoss allocation (alloc/refine.h); 0: none.
  int refine_rounds = 0;
  bool progress = true;
  // A data-parallel run (common/dist.h): DeltaLoss scoring shares its batches among the ranks
  // (DeltaLossOptions::comm); the measured KLD and refinement run whole on every rank. Null: one
  // process.
  const Comm* comm = nullptr;

  // Whether the search reads calibration text: for DeltaLoss scores or measured KLD.
  bool needs_data() const;
};

struct OptionScores {
  DeltaLossScores scores;
  bool cache_hit = false;
  bool scored = false;                   // false for options no layer can take
};

struct AutoSchemeResult {
  LayerPlan plan;                        // BF16 default + the user's fixed layers
  AllocProblem problem;
  bool weight_term = false;              // §4.4
  DeltaLossTarget target = DeltaLossTarget::Labels;  // the loss the scores differentiate
  bool has_scores = false;               // true when some allocator needed DeltaLoss
  ScoreTable scores;                     // [layer][option], NaN where the option does not fit
  std::vector<OptionScores> per_option;  // pass statistics
  std::vector<Allocation> allocations;   // for each target (outer) and allocator (inner)
  // With measure_kld: per target, the index into `allocations` of the lowest measured KLD.
  std::vector<size_t> best;
  nlohmann::json calibration;            // samples, seqlen, mode, dataset
  double seconds = 0;
};

// Runs the whole search. Scores are computed only when an allocator needs them. Throws
// sr::Error naming the field (avg_bits out of range, options, calib.dataset, layer_config).
AutoSchemeResult run_autoscheme(const Model& model, const AutoSchemeOptions& opt);

}  // namespace sr
