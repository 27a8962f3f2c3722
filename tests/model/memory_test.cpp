// Weights are memory-mapped and materialised per block: walking a 32-block model
// block by block keeps the resident set near one block plus embeddings.
#include <gtest/gtest.h>

#include "common/sysinfo.h"
#include "model/model.h"
#include "random_model.h"
#include "testutil.h"

namespace sr {
namespace {

TEST(Memory, WalkingBlocksKeepsResidentSetNearOneBlock) {
  test::TempDir dir;
  test::RandomModelSpec s;
  s.hidden = 512;
  s.intermediate = 1536;
  s.heads = 8;
  s.kv_heads = 4;
  s.layers = 32;
  s.vocab = 256;
  test::write_random_hf_model(dir.path(), s);
  const double block_bytes = 4.0 * (512 * 512 * 2 + 256 * 512 * 2 + 3 * 512 * 1536);  // ~9.4 MB
  const double model_bytes = block_bytes * 32;
  auto m = Model::open(dir.path());
  at::Tensor h = at::randn({1, 16, 512});
  auto pos = at::arange(16, at::kLong);
  const int64_t before = current_rss_bytes();
  int64_t peak = before;
  for (int64_t i = 0; i < s.layers; ++i) {
    h = m->block_forward(i, h, pos);
    peak = std::max(peak, current_rss_bytes());
  }
  const double growth = double(peak - before);
  std::printf("model %.1f MB, one block %.1f MB, RSS growth while walking %.1f MB\n", model_bytes / 1e6,
              block_bytes / 1e6, growth / 1e6);
  EXPECT_LT(growth, 4 * block_bytes) << "resident set grew like the whole model";
}

}  // namespace
}  // namespace sr
