// Block 0 of a 1-block random model with its unit input, for tests that tune or differentiate one
// block (tests/tune: amp_test, checkpoint_test).
#pragma once
#include <cstdint>
#include <memory>

#include "model/model.h"
#include "random_model.h"
#include "testutil.h"
#include "tune/unit_quantizer.h"

namespace sr::test {

struct Block0 {
  TempDir dir;
  std::unique_ptr<Model> model;
  UnitInput in;  // block 0: its FP weights, n random-token samples of T embedded tokens, y_ref
};

// `s` with 1 layer and a 128-token vocabulary, written under a new TempDir; n samples of T tokens
// (seed 5), all unmasked, y_ref the FP block's output.
std::unique_ptr<Block0> block0(RandomModelSpec s, int64_t n = 16, int64_t T = 64);

// True if both results hold the same layers, dequantized bit for bit.
bool same_layers(const UnitResult& a, const UnitResult& b);

}  // namespace sr::test
