// The measured counterpart of an allocation's DeltaLoss sum: the KL divergence from the
// full-precision model, on the calibration tokens, of the model with every layer RTN-quantized
// as the allocation says (weights, and input activations where the scheme quantizes them;
// fixed block layers as the plan says; NVFP4 global scales per tensor). A quantized lm_head is
// left out: it is the same in every allocation, so the ranking does not depend on it.
//
// Why: the DP adds per-layer scores, and under MX the effects of upgrading layers do not add up
// (two upgrades can gain less than one, four can do harm: docs/results-mixed-precision.md).
// Measuring each candidate allocation — DeltaLoss's and the baselines' — catches what the sum
// misses, for one forward of the tokens per allocation plus one of the full-precision model.
//
// KLD = mean over all B·T positions of Σ_v p_fp(v) (log p_fp(v) − log p_q(v)). Batches of
// `batch` rows; peak memory is one batch's logits for two models, never [N, T, V].
#pragma once
#include <cstdint>
#include <vector>

#include "alloc/allocation.h"
#include "alloc/kld_probe.h"
#include "common/torch.h"
#include "model/model.h"

namespace sr {

// The schemes of every block projection under allocation `a`: candidates from a, fixed layers
// from `plan`, others 16-bit. [n_layers].
std::vector<BlockSchemes> allocation_schemes(const Model& model, const LayerPlan& plan, const AllocProblem& p,
                                             const Allocation& a);

// KLD of each assignment on tokens [N, T] (N >= 1, T >= 2). Throws on malformed tokens.
std::vector<double> measured_kld(const Model& model, const std::vector<std::vector<BlockSchemes>>& assignments,
                                 const at::Tensor& tokens, int64_t batch, bool progress);

}  // namespace sr
