// Activation caches that spill to disk (tune/act_cache.h): a run whose caches are forced onto
// disk by a tiny memory budget saves the same bits as the run that keeps them in memory
// (SignRound tuning reads them per mini-batch, the FP and quantized passes per forward call), and
// a cache folder that does not exist is refused naming it. The 4m demo model, a few iterations.
// (lm_head's tuning reads the spilled caches too, but sums its imatrix sample by sample: equal up
// to float summation order, so not compared bit for bit.)
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "common/error.h"
#include "model/model.h"
#include "random_model.h"
#include "quant/formats/scheme.h"
#include "testutil.h"
#include "tune/act_cache.h"
#include "tune/pipeline.h"

namespace sr {
namespace {

const std::string kDemo = "demo/tinystories-llama-4m";

QuantizeOptions small_run() {
  QuantizeOptions o;
  o.progress = false;
  o.tune.iters = 4;
  o.tune.batch_size = 2;
  o.calib.dataset = test::repo("demo/stories.txt");
  o.calib.nsamples = 4;
  o.calib.seqlen = 32;
  return o;
}

bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes() || a.scalar_type() != b.scalar_type()) return false;
  const at::Tensor x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.data_ptr(), y.data_ptr(), size_t(x.nbytes())) == 0;
}

// Every saved layer of the run in `state`, decoded (blocks, then lm_head).
std::vector<at::Tensor> saved_weights(const Model& m, const std::string& state) {
  std::vector<at::Tensor> out;
  for (int64_t b = 0; b < m.config().n_layers; ++b)
    for (const QuantizedLayer& l : load_saved_block(state, b)) out.push_back(l.dequantized());
  for (const QuantizedLayer& l : load_saved_head(state)) out.push_back(l.dequantized());
  return out;
}

TEST(ActivationCache, DiskReadsAndWritesAsMemory) {
  test::TempDir dir;
  at::manual_seed(3);
  const at::Tensor x = at::randn({5, 7, 16});
  ActivationCache mem = ActivationCache::in_memory(x.clone());
  ActivationCache disk = ActivationCache::on_disk(dir.path(), {5, 7, 16}, at::kFloat);
  EXPECT_TRUE(disk.on_disk());
  EXPECT_TRUE(same_bits(disk.all(), at::zeros({5, 7, 16})));
  disk.copy_from(mem);
  const at::Tensor rows = at::tensor({4, 0, 2, 2}, at::kLong);
  EXPECT_TRUE(same_bits(disk.rows(rows), mem.rows(rows)));
  const at::Tensor y = at::randn({2, 7, 16});
  disk.write(1, y);
  mem.write(1, y);
  EXPECT_TRUE(same_bits(disk.all(), mem.all()));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "the cache file is unlinked once open";
  EXPECT_NE(test::error_of([&] { disk.write(4, y); }).find("does not fit"), std::string::npos);
}

TEST(CacheSpill, SameBitsAsInMemory) {
  auto model = Model::open(test::repo(kDemo));
  const LayerPlan plan = make_layer_plan(*model, {parse_scheme("W4A16"), "", false});
  test::TempDir dir;
  QuantizeOptions mem = small_run();
  mem.cache_budget = int64_t(1) << 40;
  const nlohmann::json settings = {{"test", "spill"}};
  const nlohmann::json rm = run_quantization(*model, plan, mem, dir / "mem", settings);
  QuantizeOptions disk = small_run();
  disk.cache_budget = 1;
  std::filesystem::create_directories(dir / "caches");
  disk.cache_dir = dir / "caches";
  const nlohmann::json rd = run_quantization(*model, plan, disk, dir / "disk", settings);
  const auto a = saved_weights(*model, dir / "mem"), b = saved_weights(*model, dir / "disk");
  ASSERT_EQ(a.size(), b.size());
  ASSERT_EQ(a.size(), size_t(7 * model->config().n_layers));
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(same_bits(a[i], b[i])) << "layer " << i;
  for (size_t u = 0; u < rm["units"].size(); ++u)
    EXPECT_EQ(rm["units"][u]["loss_best"], rd["units"][u]["loss_best"]) << "unit " << u;
  EXPECT_TRUE(std::filesystem::is_empty(dir / "caches"));
}

// Model keeps a plain safetensors embedding in its file and gathers rows from it: the same values
// as the decoded matrix gives, in F32 and BF16, tied or not.
TEST(LazyEmbedding, GatherEqualsDecodedMatrix) {
  for (const char* dtype : {"F32", "BF16"})
    for (bool tied : {false, true}) {
      test::TempDir dir;
      test::RandomModelSpec spec;
      spec.dtype = dtype;
      spec.tied = tied;
      spec.shards = 2;
      auto m = Model::open(test::write_random_hf_model(dir / "m", spec));
      const at::Tensor tokens = at::randint(0, spec.vocab, {3, 9}, at::kLong);
      const at::Tensor lazy = m->embed(tokens);  // before embedding() decodes the matrix
      EXPECT_TRUE(same_bits(lazy, at::embedding(m->embedding(), tokens))) << dtype << (tied ? " tied" : "");
      EXPECT_TRUE(same_bits(m->embed(tokens), lazy));
      EXPECT_EQ(m->lm_head().sizes(), m->embedding().sizes());
    }
}

TEST(CacheSpill, MissingFolderIsNamed) {
  auto model = Model::open(test::repo(kDemo));
  const LayerPlan plan = make_layer_plan(*model, {parse_scheme("W4A16"), "", false});
  test::TempDir dir;
  QuantizeOptions o = small_run();
  o.cache_budget = 1;
  o.cache_dir = dir / "no-such-folder";
  const std::string e = test::error_of([&] { run_quantization(*model, plan, o, dir / "state", {}); });
  EXPECT_NE(e.find(dir / "no-such-folder"), std::string::npos) << e;
  EXPECT_FALSE(std::filesystem::exists(dir / "state")) << "refused before the first byte is written";
}

}  // namespace
}  // namespace sr
