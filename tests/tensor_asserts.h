// GoogleTest assertions on tensors shared by the quantization tests.
#pragma once
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <functional>

namespace sr::test {

// Bitwise equality of two tensors compared as fp32 (signed zeros and NaN payloads
// distinguished); on failure, how many elements differ and the first mismatch.
::testing::AssertionResult same_bits(const at::Tensor& a, const at::Tensor& b);

// One linear layer to tune in isolation: inputs X [n, in] with heavy channels (a log-normal
// scale per column) and a rank-16 correlated part plus noise, weights W [out, in] ~ N(0, 0.02²),
// and the per-column importance mean(X²). Correlated inputs are what the imatrix's per-column
// weights cannot see and the layer's output loss can. Deterministic in `seed` (std::mt19937).
struct CorrelatedLayer {
  at::Tensor X, W, imp;
};
CorrelatedLayer correlated_layer(int64_t out, int64_t in, int64_t n, unsigned seed);

// SignRound's sign-SGD on the rounding offsets v [out, in] of `layer` (v from 0, lr 1/iters with
// linear decay, v clamped to [-1/2, 1/2], the best iterate by the output loss mean((X(ŵ-W)ᵀ)²)
// kept). qdq_row(r, v_r, w_hat_r, dv_r) fills row r's ŵ and its straight-through ∂ŵ/∂v.
struct SignSgdRun {
  at::Tensor best_v;
  double best_loss = 0, seconds_per_iter = 0;
};
SignSgdRun sign_sgd_on_layer(const CorrelatedLayer& layer, int64_t iters,
                             const std::function<void(int64_t, const float*, float*, float*)>& qdq_row);

}  // namespace sr::test
