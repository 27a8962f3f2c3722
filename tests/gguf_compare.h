// Tensor-for-tensor equality of two GGUF files, for the tests that hold our files against
// llama.cpp's (llama-quantize, convert_hf_to_gguf.py). Callers add context with SCOPED_TRACE.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "io/gguf_reader.h"
#include "quant/formats/ggml_types.h"

namespace sr::test {

// A shape (outermost first) without its outer dimensions of 1: the ggml tensor it describes.
// llama-quantize writes ggml_n_dims dimensions, so the converter's [1, D] gate (Qwen2-MoE's
// ffn_gate_inp_shexp), which we write as it is, comes back from llama-quantize as [D].
inline std::vector<int64_t> ggml_shape(std::vector<int64_t> s) {
  while (s.size() > 1 && s.front() == 1) s.erase(s.begin());
  return s;
}

// Same tensor count, and for each tensor the same name, type, ggml shape and bytes. In file
// order, or by name where the two writers order tensors differently (by_name).
inline void expect_same_gguf_tensors(const GgufReader& ours, const GgufReader& theirs, bool by_name = false) {
  ASSERT_EQ(ours.tensors().size(), theirs.tensors().size());
  for (size_t i = 0; i < ours.tensors().size(); ++i) {
    const GgufTensorInfo& a = ours.tensors()[i];
    if (!by_name) ASSERT_EQ(a.name, theirs.tensors()[i].name) << i;
    const GgufTensorInfo& b = by_name ? theirs.tensor(a.name) : theirs.tensors()[i];
    EXPECT_EQ(ggml_type_name(a.type), ggml_type_name(b.type)) << a.name;
    EXPECT_EQ(ggml_shape(a.shape), ggml_shape(b.shape)) << a.name;
    ASSERT_EQ(a.nbytes, b.nbytes) << a.name;
    EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << a.name << " differs";
  }
}

}  // namespace sr::test
