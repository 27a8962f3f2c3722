// On-disk cache of DeltaLoss scores, one file per option (spec §4.8: auto-round's
// _autoscheme_cache_*), so that several budgets, allocators and later runs (autoscheme, then
// quantize --avg_bits) reuse one scoring pass.
//
// A key is a JSON object naming everything the scores depend on:
//   {"version": 1, "model": {path, files: [{name, bytes, mtime}]}, "tokens": {shape, fnv1a64},
//    "batch_size": 8, "weight_term": false, "layers": [names], "option": scheme JSON}
// The calibration tokens stand for the dataset, nsamples, seqlen, seed and tokenizer at once.
// File: <dir>/deltaloss-<fnv1a64 of key.dump()>.json = {"key": key, "scores": DeltaLossScores}.
// A file whose stored key differs from the requested one (hash collision, edited file) or that
// does not parse is ignored with a note on stderr and rewritten after scoring.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "alloc/deltaloss.h"

namespace sr {

nlohmann::json deltaloss_cache_key(const Model& model, const std::vector<ScoredLayer>& layers,
                                   const QuantScheme& option, const at::Tensor& tokens, const DeltaLossOptions& opt);

// $SIGNROUND_CACHE_DIR/deltaloss, else $XDG_CACHE_HOME/signround/deltaloss, else
// $HOME/.cache/signround/deltaloss ("" when none of these is set).
std::string default_score_cache_dir();

class ScoreCache {
 public:
  explicit ScoreCache(std::string dir) : dir_(std::move(dir)) {}  // "" disables the cache
  bool enabled() const { return !dir_.empty(); }
  std::optional<DeltaLossScores> load(const nlohmann::json& key) const;
  // Writes atomically (temporary + rename); creates the folder. Throws naming the file on failure.
  void store(const nlohmann::json& key, const DeltaLossScores& scores) const;
  std::string file_for(const nlohmann::json& key) const;

 private:
  std::string dir_;
};

// deltaloss_scores through the cache: a hit returns the stored scores (`hit` set true). In a
// data-parallel run (opt.comm) rank 0's cache alone is read and written; a hit there is sent to
// every rank.
DeltaLossScores cached_deltaloss_scores(const ScoreCache& cache, const Model& model,
                                        const std::vector<ScoredLayer>& layers, const QuantScheme& option,
                                        const at::Tensor& tokens, const DeltaLossOptions& opt, bool* hit = nullptr);

}  // namespace sr
