// Runs a model over many token sequences layer by layer: all sequences of a wave
// pass block 0, then block 1, ... so each block is materialised once per wave
// (the weights stay memory-mapped; resident memory is one block plus the wave's
// hidden states). Used by evaluation, where the same model sees every chunk.
#pragma once
#include <cstdint>
#include <functional>

#include "common/torch.h"
#include "model/model.h"

namespace sr {

// Receives the logits of rows [row, row + b) at the requested positions: [b, S, V].
using LogitsSink = std::function<void(int64_t row, const at::Tensor& logits)>;

struct LayerwiseOptions {
  int64_t first_position = 0;      // logits are produced for positions [first, first + count)
  int64_t position_count = -1;     // -1: up to the end of the sequence
  int64_t max_wave_bytes = 1LL << 30;  // budget for the wave's hidden states (and caller's logits)
  bool progress = true;
};

// tokens: [N, T] int64. Calls `sink` for every row exactly once, in row order.
// Returns the number of waves used.
int64_t run_layerwise(const Model& model, const at::Tensor& tokens, const LayerwiseOptions& opt,
                      const LogitsSink& sink);

}  // namespace sr
