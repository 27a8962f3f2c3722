// GoogleTest assertions on tensors shared by the quantization tests.
#pragma once
#include <gtest/gtest.h>

#include <ATen/ATen.h>

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

}  // namespace sr::test
