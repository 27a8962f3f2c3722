// GoogleTest assertions on tensors shared by the quantization tests.
#pragma once
#include <gtest/gtest.h>

#include <ATen/ATen.h>

namespace sr::test {

// Bitwise equality of two tensors compared as fp32 (signed zeros and NaN payloads
// distinguished); on failure, how many elements differ and the first mismatch.
::testing::AssertionResult same_bits(const at::Tensor& a, const at::Tensor& b);

}  // namespace sr::test
