// SignRound on a tiny random model, one block at a time: the tuned block loss is
// below the RTN loss for every block, the rounding offsets move and stay within
// the bound sign-SGD implies, and the run is deterministic for a seed.
#include "tune/unit_quantizer.h"

#include <gtest/gtest.h>

#include "model/model.h"
#include "random_model.h"
#include "testutil.h"

namespace sr {
namespace {

struct Fixture {
  test::TempDir dir;
  std::unique_ptr<Model> model;
  LayerPlan plan;
  at::Tensor x;     // [N, T, D] block-0 inputs
  at::Tensor mask;  // [N, T]
};

std::unique_ptr<Fixture> make_fixture(const std::string& scheme) {
  auto f = std::make_unique<Fixture>();
  test::RandomModelSpec s;
  s.hidden = 128;
  s.intermediate = 256;
  s.heads = 4;
  s.kv_heads = 2;
  s.layers = 3;
  s.vocab = 128;
  f->model = Model::open(test::write_random_hf_model(f->dir.path(), s));
  f->plan = make_layer_plan(*f->model, {parse_scheme(scheme), "", false});
  at::manual_seed(3);
  auto tokens = at::randint(0, s.vocab, {16, 32}, at::kLong);
  f->x = f->model->embed(tokens);
  f->mask = at::ones({16, 32}, at::kBool);
  f->mask.select(1, 31).fill_(false);
  return f;
}

// Block 0 of the fixture with its FP outputs as the target.
UnitInput block0_input(const Fixture& f) {
  UnitInput in;
  in.blocks = {0};
  in.fp = {f.model->load_block(0)};
  {
    at::NoGradGuard ng;
    in.y_ref = unit_forward(f.model->config(), in.fp, {nullptr}, f.x, f.model->rope(f.x.size(1)));
  }
  in.x_in = f.x;
  in.mask = f.mask;
  return in;
}

double block_loss(const ModelConfig& c, const std::vector<BlockWeights>& w, const at::Tensor& x, const at::Tensor& y,
                  const RopeTables& rope) {
  at::NoGradGuard ng;
  return (unit_forward(c, w, {nullptr}, x, rope) - y).pow(2).mean().item<double>();
}

TEST(UnitQuantizer, SignRoundBeatsRtnOnEveryBlock) {
  for (std::string scheme : {"W2A16G64", "W4A16", "MXFP4"}) {
    for (bool v2 : {false, true}) {
      auto f = make_fixture(scheme);
      const ModelConfig& c = f->model->config();
      const RopeTables& rope = f->model->rope(32);
      at::Tensor x_fp = f->x, x_q = f->x;
      for (int64_t b = 0; b < c.n_layers; ++b) {
        UnitInput in;
        in.blocks = {b};
        in.fp = {f->model->load_block(b)};
        at::Tensor y;
        {
          at::NoGradGuard ng;
          y = unit_forward(c, in.fp, {nullptr}, x_fp, rope);
        }
        in.x_in = x_q;
        in.y_ref = y;
        in.mask = f->mask;
        TuneOptions rtn_opt;
        rtn_opt.method = Method::Rtn;
        UnitResult rtn = quantize_unit(c, f->plan, in, rope, rtn_opt);
        TuneOptions sr_opt;
        sr_opt.iters = 60;
        sr_opt.batch_size = 4;
        sr_opt.alg_ext = v2;
        UnitResult tuned = quantize_unit(c, f->plan, in, rope, sr_opt);
        // MXFP4 quantizes activations too: compare both with the same activation hooks.
        const double l_rtn = block_loss(c, rtn.quantized, x_q, y, rope);
        const double l_sr = block_loss(c, tuned.quantized, x_q, y, rope);
        std::printf("%s %s block %lld: RTN %.4g  SignRound %.4g (best iter %lld)\n", scheme.c_str(), v2 ? "v2" : "v1",
                    (long long)b, l_rtn, l_sr, (long long)tuned.stats["best_iter"].get<int64_t>());
        EXPECT_LT(l_sr, l_rtn) << scheme << (v2 ? " v2" : " v1") << " block " << b;
        at::NoGradGuard ng;
        x_q = unit_forward(c, tuned.quantized, {nullptr}, x_q, rope);
        x_fp = y;
      }
    }
  }
}

TEST(UnitQuantizer, OffsetsMoveAndStayWithinTheSignSgdBound) {
  auto f = make_fixture("W2A16G64");
  const ModelConfig& c = f->model->config();
  const RopeTables& rope = f->model->rope(32);
  UnitInput in = block0_input(*f);
  TuneOptions opt;
  opt.iters = 40;
  opt.batch_size = 4;
  opt.not_use_best_mse = true;
  UnitResult r = quantize_unit(c, f->plan, in, rope, opt);
  // |v| <= sum_t lr_t = lr0 (T + 1) / 2 with lr0 = 1/T (spec §1.7: v is bounded only by
  // sign-SGD's steps), and the offsets did move.
  const double bound = (1.0 / opt.iters) * (opt.iters + 1) / 2;
  const double max_v = r.stats["max_abs_v"].get<double>();
  std::printf("max |v| = %.4f, bound %.4f\n", max_v, bound);
  EXPECT_GT(max_v, 0.1);
  EXPECT_LE(max_v, bound + 1e-6);
  // The tuned fake-quant weights differ from RTN's.
  TuneOptions rtn_opt;
  rtn_opt.method = Method::Rtn;
  UnitResult rtn = quantize_unit(c, f->plan, in, rope, rtn_opt);
  int64_t changed = 0;
  for (int p = llama::Q; p <= llama::Down; ++p) changed += (r.quantized[0].weight(p) != rtn.quantized[0].weight(p)).sum().item<int64_t>();
  EXPECT_GT(changed, 0);
}

TEST(UnitQuantizer, SameSeedSameResultDifferentSeedDifferent) {
  auto f = make_fixture("W2A16G64");
  const ModelConfig& c = f->model->config();
  const RopeTables& rope = f->model->rope(32);
  UnitInput in = block0_input(*f);
  auto run = [&](uint64_t seed) {
    TuneOptions opt;
    opt.iters = 20;
    opt.batch_size = 4;
    opt.seed = seed;
    return quantize_unit(c, f->plan, in, rope, opt);
  };
  UnitResult a = run(1), b = run(1), d = run(2);
  bool all_equal = true, any_diff = false;
  for (size_t k = 0; k < a.layers.size(); ++k) {
    all_equal &= at::equal(a.layers[k].encoded.codes, b.layers[k].encoded.codes);
    any_diff |= !at::equal(a.layers[k].encoded.codes, d.layers[k].encoded.codes);
  }
  EXPECT_TRUE(all_equal);
  EXPECT_TRUE(any_diff);
}

}  // namespace
}  // namespace sr

namespace sr {
namespace {

// §2.7: lm_head tuned alone on its inputs beats its RTN quantization.
TEST(UnitQuantizer, LmHeadTuningBeatsRtn) {
  test::TempDir dir;
  test::RandomModelSpec s;
  s.hidden = 128;
  s.vocab = 256;
  auto model = Model::open(test::write_random_hf_model(dir.path(), s));
  LayerPlan plan = make_layer_plan(*model, {parse_scheme("W2A16G64"), "", true});
  ASSERT_TRUE(plan.find("lm_head") && plan.find("lm_head")->quantized());
  at::manual_seed(5);
  HeadInput in;
  in.weight = model->lm_head();
  const at::Tensor x_fp = at::randn({8, 16, 128}), x_q = x_fp + 0.05 * at::randn({8, 16, 128});
  in.x_fp = x_fp;
  in.x_q = x_q;
  in.mask = at::ones({8, 16}, at::kBool);
  auto loss = [&](const UnitResult& r) {
    at::NoGradGuard ng;
    return (at::linear(x_q, r.layers[0].dequantized()) - at::linear(x_fp, in.weight)).pow(2).mean().item<double>();
  };
  TuneOptions rtn_opt;
  rtn_opt.method = Method::Rtn;
  TuneOptions opt;
  opt.iters = 40;
  opt.batch_size = 4;
  const double l_rtn = loss(quantize_head(plan, in, rtn_opt)), l_sr = loss(quantize_head(plan, in, opt));
  std::printf("lm_head: RTN %.4g  SignRound %.4g\n", l_rtn, l_sr);
  EXPECT_LT(l_sr, l_rtn);
}

}  // namespace
}  // namespace sr
