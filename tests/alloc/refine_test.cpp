// The KLD probe's caches (alloc/kld_probe.h) and the measured refinement (alloc/refine.h):
// prefix reuse and the weight cache change no number; a refinement never leaves the budget,
// never measures worse than its start, reports what a fresh measurement gives, and improves a
// start that leaves bits unspent.
#include "alloc/refine.h"

#include <gtest/gtest.h>

#include <cmath>


#include "alloc/autoscheme.h"
#include "alloc/measured_kld.h"
#include "cli/flag_values.h"
#include "common/error.h"
#include "model/block_desc.h"
#include "model/llama.h"
#include "random_model.h"
#include "testutil.h"

namespace sr {
namespace {

using cli::parse_alloc_options;
using cli::parse_probe_encoder;

std::vector<BlockSchemes> uniform_assignment(int64_t n_layers, const QuantScheme& s) {
  const size_t n = static_cast<size_t>(n_layers);
  std::vector<BlockSchemes> a(n);
  for (BlockSchemes& b : a) b.assign(size_t(test::kLlamaLinears), s);
  return a;
}

TEST(KldProbe, BasePrefixAndWeightCacheChangeNoNumber) {
  test::TempDir dir;
  test::RandomModelSpec spec;
  spec.layers = 4;
  auto m = Model::open(test::write_random_hf_model(dir.path(), spec));
  const int64_t L = m->config().n_layers;
  const at::Tensor tokens = at::randint(m->config().vocab, {5, 16}, at::TensorOptions().dtype(at::kLong));
  const QuantScheme mx4 = preset_scheme("MXFP4"), mx8 = preset_scheme("MXFP8"), w2 = preset_scheme("W2A16G64");
  std::vector<BlockSchemes> base = uniform_assignment(L, mx4);
  std::vector<BlockSchemes> late = base, early = base;
  late[size_t(L - 2)][int(llama::Down)] = mx8;  // differs from the base in block L-2 only
  early[0][int(llama::V)] = w2;                  // and in block 0
  KldProbe fresh(*m, tokens, 2), cached(*m, tokens, 3), uncached(*m, tokens, 5, ProbeEncoder::Rtn, /*weight_cache_bytes=*/0);
  cached.set_base(base);
  uncached.set_base(base);
  for (const auto* a : {&base, &late, &early}) {
    const double want = fresh.kld(*a);
    EXPECT_GT(want, 1e-6);
    EXPECT_NEAR(cached.kld(*a), want, 1e-5 * want);
    EXPECT_NEAR(uncached.kld(*a), want, 1e-5 * want);
  }
  // The late change reruns 2 blocks per batch, not L.
  const int64_t before = cached.blocks_run();
  cached.kld(late);
  EXPECT_EQ(cached.blocks_run() - before, 2 * 2);  // 2 batches of 3 rows
  EXPECT_THROW(cached.kld(uniform_assignment(L - 1, mx4)), Error);
  EXPECT_THROW({ KldProbe bad(*m, tokens.narrow(1, 0, 1), 2); }, Error);
}

TEST(KldProbe, OptRtnEncoderIsUsedWhereASearchExists) {
  test::TempDir dir;
  auto m = Model::open(test::write_random_hf_model(dir.path(), {}));
  const int64_t L = m->config().n_layers;
  const at::Tensor tokens = at::randint(m->config().vocab, {4, 16}, at::TensorOptions().dtype(at::kLong));
  KldProbe rtn(*m, tokens, 2, ProbeEncoder::Rtn), opt(*m, tokens, 2, ProbeEncoder::OptRtn);
  // W2A16G64 has the §3.3 search: the imatrix-weighted scales differ from RTN's.
  const auto w2 = uniform_assignment(L, preset_scheme("W2A16G64"));
  EXPECT_GT(std::fabs(opt.kld(w2) - rtn.kld(w2)), 1e-3 * rtn.kld(w2));
  // Asymmetric INT has none (opt_rtn falls back to RTN): the same numbers.
  const auto asym = uniform_assignment(L, parse_scheme("bits=3,group_size=32,sym=false"));
  EXPECT_GT(rtn.kld(asym), 0.0);
  EXPECT_NEAR(opt.kld(asym), rtn.kld(asym), 1e-6 * rtn.kld(asym));
  EXPECT_EQ(parse_probe_encoder("opt-rtn"), ProbeEncoder::OptRtn);
  EXPECT_THROW(parse_probe_encoder("gptq"), Error);
}

// A given imatrix (quantize --imatrix) replaces the probe's own Σx²: given exactly what the probe
// would collect it measures the same KLD; given other importances, another one.
TEST(KldProbe, GivenImatrixReplacesTheProbesOwn) {
  test::TempDir dir;
  auto m = Model::open(test::write_random_hf_model(dir.path(), {}));
  const int64_t L = m->config().n_layers, N = 4, T = 16;
  const at::Tensor tokens = at::randint(m->config().vocab, {N, T}, at::TensorOptions().dtype(at::kLong));
  GivenImportances same, other;
  at::NoGradGuard ng;
  const at::Tensor pos = at::arange(T, at::kLong);
  for (int64_t r = 0; r < N; r += 2) {  // the probe's batches (2 rows), summed in its order
    at::Tensor h = m->embed(tokens.narrow(0, r, 2));
    for (int64_t b = 0; b < L; ++b) {
      InputHook hook = [&](int p, const at::Tensor& x) {
        const std::string name = linear_name(m->block_desc(b), b, p);
        const at::Tensor sq = x.reshape({-1, x.size(-1)}).pow(2).sum(0);
        GivenImportance& g = same[name];
        g.sum_sq = g.sum_sq.defined() ? g.sum_sq + sq : sq;
        g.tokens = N * T;
        other[name] = {at::rand_like(sq) * sq.mean() * 2, N * T};
        return x;
      };
      h = block_forward(m->config(), m->load_block(b), h, pos, m->rope(T), hook);
    }
  }
  const auto w2 = uniform_assignment(L, preset_scheme("W2A16G64"));
  const auto q4 = uniform_assignment(L, parse_scheme("gguf:q4_0"));
  KldProbe own(*m, tokens, 2, ProbeEncoder::OptRtn);
  KldProbe given_same(*m, tokens, 2, ProbeEncoder::OptRtn, int64_t(1) << 30, &same);
  KldProbe given_other(*m, tokens, 2, ProbeEncoder::OptRtn, int64_t(1) << 30, &other);
  for (const auto& a : {w2, q4}) {
    const double k = own.kld(a);
    EXPECT_NEAR(given_same.kld(a), k, 1e-5 * k);
    EXPECT_GT(std::fabs(given_other.kld(a) - k), 1e-3 * k);
  }
}

struct Fixture {
  test::TempDir dir;
  std::unique_ptr<Model> m;
  at::Tensor tokens;
  LayerPlan plan;
  AllocProblem p;
  Fixture() {
    test::RandomModelSpec spec;
    spec.layers = 3;
    m = Model::open(test::write_random_hf_model(dir.path(), spec));
    tokens = at::randint(m->config().vocab, {4, 24}, at::TensorOptions().dtype(at::kLong));
    plan = make_layer_plan(*m, {preset_scheme("BF16"), "", false});
    p = make_alloc_problem(plan, parse_alloc_options("MXFP4,MXFP8"), FusePolicy::Off, false);
  }
};

TEST(Refine, ImprovesAStartThatLeavesBitsUnspentAndStaysInBudget) {
  Fixture f;
  // uniform at 5 bits = every layer MXFP4: 0.75 bit/weight unspent, so some single upgrade helps.
  const Allocation start = allocate(f.p, nullptr, 5.0, AllocatorKind::Uniform);
  KldProbe probe(*f.m, f.tokens, 2);
  const RefineResult r = refine_allocation(*f.m, f.plan, f.p, nullptr, start, 3, probe, false);
  EXPECT_LT(r.allocation.measured_kld, r.allocation.unrefined_kld);
  ASSERT_FALSE(r.round_kld.empty());
  EXPECT_EQ(r.round_kld.back(), r.allocation.measured_kld);
  for (size_t i = 1; i < r.round_kld.size(); ++i) EXPECT_LT(r.round_kld[i], r.round_kld[i - 1]);
  EXPECT_LE(r.allocation.bits, item_budget(f.p, 5.0) + f.p.fixed_bits);
  EXPECT_GT(r.allocation.bits, start.bits);
  EXPECT_DOUBLE_EQ(r.allocation.avg_bits, double(r.allocation.bits) / double(f.p.total_weights()));
  // Its reported KLD is what a fresh probe measures for it.
  KldProbe fresh(*f.m, f.tokens, 4);
  const double again = fresh.kld(allocation_schemes(*f.m, f.plan, f.p, r.allocation));
  EXPECT_NEAR(r.allocation.measured_kld, again, 1e-5 * again);
  // A round measures every single change (each layer has one other option here).
  EXPECT_GE(r.allocation.refine_evaluations, int64_t(1 + f.p.layers.size()));
}

TEST(Refine, ZeroRoundsReturnTheStartMeasured) {
  Fixture f;
  const Allocation start = allocate(f.p, nullptr, 4.5, AllocatorKind::Tail);
  KldProbe probe(*f.m, f.tokens, 2);
  const RefineResult r = refine_allocation(*f.m, f.plan, f.p, nullptr, start, 0, probe, false);
  EXPECT_EQ(r.allocation.option, start.option);
  EXPECT_EQ(r.allocation.measured_kld, r.allocation.unrefined_kld);
  EXPECT_EQ(r.allocation.refine_evaluations, 1);
}

TEST(Refine, AutoSchemeReplacesTheDeltaLossAllocationByItsRefinement) {
  test::TempDir dir;
  test::RandomModelSpec spec;
  spec.layers = 3;
  auto m = Model::open(test::write_random_gguf_model(dir.path(), spec));  // has a tokenizer
  test::write_vocabulary_text(dir / "calib.txt");
  AutoSchemeOptions o;
  o.avg_bits = {4.5, 6};
  o.options = parse_alloc_options("MXFP4,MXFP8");
  o.allocators = {AllocatorKind::DeltaLoss, AllocatorKind::Random};
  o.calib = {dir / "calib.txt", 4, 32, 42};
  o.batch_size = 2;
  o.refine_rounds = 2;
  o.progress = false;
  const AutoSchemeResult r = run_autoscheme(*m, o);
  ASSERT_EQ(r.allocations.size(), 4u);
  for (const Allocation& a : r.allocations) {
    if (a.allocator == AllocatorKind::DeltaLoss) {
      ASSERT_TRUE(std::isfinite(a.unrefined_kld));
      EXPECT_LE(a.measured_kld, a.unrefined_kld);
      EXPECT_GT(a.refine_evaluations, 0);
      EXPECT_LE(a.bits, item_budget(r.problem, a.target_avg_bits) + r.problem.fixed_bits);
    } else {
      EXPECT_FALSE(std::isfinite(a.unrefined_kld));  // baselines are not refined
    }
  }
  o.refine_rounds = -1;
  EXPECT_THROW(run_autoscheme(*m, o), Error);
}

}  // namespace
}  // namespace sr
