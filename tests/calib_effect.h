// What a per-layer quantization does to a model on calibration tokens, measured directly (no
// autograd): the reference the DeltaLoss test and benchmark hold the first-order scores against.
#pragma once
#include <cstdint>
#include <functional>

#include <ATen/ATen.h>

#include "model/model.h"
#include "quant/formats/scheme.h"

namespace sr::test {

struct CalibEffect {
  double loss = 0;   // Σ over batches of the batch-mean next-token loss (as the scores sum)
  double kld = 0;    // mean KL(p_fp ‖ p) per token, when fp_logp was given
  at::Tensor logp;   // [N, T, V] log-probabilities, when fp_logp was not given
};

// Runs `tokens` [N, T] in batches of `batch` with every block linear ℓ (index block·(linears per block) +
// proj) quantized as scheme_of(ℓ) — weights by RTN, activations too if the scheme says so; a
// 16-bit scheme leaves the layer as it is. With `fp_logp` [N, T, V] (the full-precision model's
// log-probabilities) it also measures the KL divergence to it; without, it returns logp.
CalibEffect calib_effect(const Model& m, const at::Tensor& tokens, int64_t batch,
                         const std::function<QuantScheme(int)>& scheme_of, const at::Tensor& fp_logp);

}  // namespace sr::test
