// Measured KLD of allocations (alloc/measured_kld.h): equal to the test suite's own per-layer
// quantization effect (tests/calib_effect, a separate implementation with cached FP log-probs),
// zero when nothing is quantized, and the per-target choice of the lowest one, through the
// library and through `signround quantize --allocator a,b --measure_kld`.
#include "alloc/measured_kld.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "alloc/autoscheme.h"
#include "calib_effect.h"
#include "cli/flag_values.h"
#include "random_model.h"
#include "testutil.h"

namespace sr {
namespace {

TEST(MeasuredKld, EqualsTheDirectMeasurementAndIsZeroUnquantized) {
  test::TempDir dir;
  auto m = Model::open(test::write_random_hf_model(dir.path(), {}));
  const ModelConfig& c = m->config();
  const at::Tensor tokens = at::randint(c.vocab, {5, 24}, at::TensorOptions().dtype(at::kLong));
  // A mixed assignment: MXFP4 (weights and activations) and W4A16 alternating, one layer kept.
  const QuantScheme mx = preset_scheme("MXFP4"), w4 = preset_scheme("W4A16"), keep = preset_scheme("BF16");
  auto scheme_of = [&](int l) { return l == 3 ? keep : (l % 2 ? mx : w4); };
  std::vector<BlockSchemes> mixed(size_t(c.n_layers), BlockSchemes(test::kLlamaLinears)),
      none(size_t(c.n_layers), BlockSchemes(test::kLlamaLinears));
  for (int64_t b = 0; b < c.n_layers; ++b)
    for (int p = llama::Q; p <= llama::Down; ++p) {
      mixed[size_t(b)][int(p)] = scheme_of(int(b * test::kLlamaLinears + int(p)));
      none[size_t(b)][int(p)] = keep;
    }
  const std::vector<double> kld = measured_kld(*m, {mixed, none}, tokens, 2, false);
  const at::Tensor fp = test::calib_effect(*m, tokens, 5, [&](int) { return keep; }, at::Tensor()).logp;
  const double want = test::calib_effect(*m, tokens, 5, scheme_of, fp).kld;
  EXPECT_GT(want, 1e-6);
  EXPECT_NEAR(kld[0], want, 1e-5 * want);  // fp32 logits, batches of 2 vs 5
  EXPECT_NEAR(kld[1], 0.0, 1e-9);
}

TEST(MeasuredKld, AutoSchemePicksTheLowestPerTarget) {
  test::TempDir dir;
  test::RandomModelSpec spec;
  spec.layers = 3;
  const std::string gguf = test::write_random_gguf_model(dir.path(), spec);  // has a tokenizer
  auto m = Model::open(gguf);
  test::write_vocabulary_text(dir / "calib.txt");
  AutoSchemeOptions o;
  o.avg_bits = {4.5, 6};
  o.options = cli::parse_alloc_options("MXFP4,MXFP8");
  o.allocators = {AllocatorKind::Head, AllocatorKind::Tail, AllocatorKind::Random};
  o.calib = {dir / "calib.txt", 4, 32, 42};
  o.batch_size = 2;
  o.measure_kld = true;
  o.progress = false;
  const AutoSchemeResult r = run_autoscheme(*m, o);
  ASSERT_EQ(r.allocations.size(), 6u);
  ASSERT_EQ(r.best.size(), 2u);
  for (size_t t = 0; t < 2; ++t) {
    EXPECT_EQ(r.allocations[r.best[t]].target_avg_bits, o.avg_bits[t]);
    for (size_t k = 3 * t; k < 3 * t + 3; ++k) {
      ASSERT_TRUE(std::isfinite(r.allocations[k].measured_kld));
      EXPECT_LE(r.allocations[r.best[t]].measured_kld, r.allocations[k].measured_kld);
    }
  }
}

TEST(MeasuredKld, QuantizeWithSeveralAllocatorsNeedsMeasurementAndRecordsIt) {
  test::TempDir dir;
  const std::string base = test::cli() + " quantize --threads 2 --quiet --json --model " +
                           test::repo("demo/tinystories-llama-4m") + " --dataset " + test::repo("demo/stories.txt") +
                           " --avg_bits 4.5 --options MXFP4,MXFP8 --allocator head8,tail8 --autoscheme_nsamples 4 "
                           "--autoscheme_seqlen 64 --score_cache none --iters 0 --disable_opt_rtn --output_dir ";
  auto refused = test::run_command(base + (dir / "a"));
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("--measure_kld"), std::string::npos) << refused.err;
  auto r = test::run_command(base + (dir / "b") + " --measure_kld");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rec = nlohmann::json::parse(r.out)["autoscheme"];
  const auto by = rec["measured_kld_by_allocator"];
  ASSERT_TRUE(by.contains("head8") && by.contains("tail8")) << rec.dump();
  const double best = std::min(by["head8"].get<double>(), by["tail8"].get<double>());
  EXPECT_EQ(rec["measured_kld"].get<double>(), best);
  EXPECT_EQ(rec["allocator"].get<std::string>(), by["head8"].get<double>() == best ? "head8" : "tail8");
}

}  // namespace
}  // namespace sr
