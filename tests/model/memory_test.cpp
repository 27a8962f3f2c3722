// Weights are memory-mapped and materialised per block: walking a 32-block model
// block by block keeps the resident set near one block plus embeddings.
#include <gtest/gtest.h>

#include <malloc.h>

#include <cstdlib>

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

// Touches one block of `bytes` and frees it; returns how much the free took off the resident set.
int64_t rss_released_by_free(size_t bytes) {
  auto* p = static_cast<volatile char*>(std::malloc(bytes));
  for (size_t i = 0; i < bytes; i += 4096) p[i] = 1;
  const int64_t touched = current_rss_bytes();
  std::free(const_cast<char*>(p));
  return touched - current_rss_bytes();
}

// configure_process keeps freed blocks in the heap (fast reuse); map_large_blocks, for runs whose
// one-sample activations reach 32 MiB, maps blocks of 32 MiB and more again, so that a freed one
// leaves the resident set (docs/results-scale.md, "Where the per-sample memory went").
TEST(Memory, LargeBlocksAreMappedOnlyAtRealShapes) {
  EXPECT_EQ(sample_activation_bytes(4, 768, 512), 4 * 512 * 4 * 512);    // the demo model: its scores
  EXPECT_EQ(sample_activation_bytes(32, 8192, 2048), 4LL * 2048 * 32 * 2048);  // Llama-3.2-1B
  EXPECT_EQ(sample_activation_bytes(4, 768, 64), 4 * 64 * 768);           // short samples: the MLP
  if (std::getenv("MALLOC_MMAP_MAX_") || std::getenv("MALLOC_MMAP_THRESHOLD_"))
    GTEST_SKIP() << "glibc's mmap variables are set: the process settings defer to them";
  EXPECT_FALSE(map_large_blocks(sample_activation_bytes(4, 768, 512)));  // 4 MiB a sample: the heap
  const size_t big = size_t(256) << 20;
  const int64_t heap = rss_released_by_free(big);
  EXPECT_LT(heap, int64_t(big / 2)) << "configure_process: freed memory stays in the heap";
  ASSERT_TRUE(map_large_blocks(sample_activation_bytes(32, 8192, 2048)));
  // glibc maps only what its heap's free chunks cannot serve: ask for more than the whole heap
  // (the test before left free chunks there), as a real run's first large block does.
  const size_t beyond_heap = mallinfo2().arena + big;
  const int64_t mapped = rss_released_by_free(beyond_heap);
  std::printf("RSS released by freeing a touched block: 256 MiB in the heap %.1f MiB, %.1f MiB mapped %.1f MiB\n",
              double(heap) / (1 << 20), double(beyond_heap) / (1 << 20), double(mapped) / (1 << 20));
  EXPECT_GT(mapped, int64_t(beyond_heap) - (int64_t(16) << 20));
}

}  // namespace
}  // namespace sr
