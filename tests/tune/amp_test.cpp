// bf16 amp (common/amp.h) in SignRound tuning and DeltaLoss scoring: the scope casts matmuls
// only and restores what it found; the trainable parameters, their gradients and the weights'
// qdq stay fp32 under it; tuning with amp lands near the fp32 result, and with amp off it is
// the fp32 loop bit for bit even inside an enclosing autocast; DeltaLoss under amp ranks layers
// like fp32's and says so in its record and its cache key; a CPU without bf16 (simulated with
// SIGNROUND_NO_BF16) falls back to fp32 in the CLI unless --enable_amp asks, and the record says
// which precision ran.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "alloc/deltaloss.h"
#include "alloc/score_cache.h"
#include "common/amp.h"
#include "model/model.h"
#include "quant/qdq.h"
#include "block0_fixture.h"
#include "random_model.h"
#include "testutil.h"
#include "tune/unit_quantizer.h"

namespace sr {
namespace {

using test::Block0;
using test::block0;
using test::same_layers;
namespace fs = std::filesystem;

const at::Device kCpu(at::kCPU);

TEST(Amp, ScopeCastsMatmulsOnlyAndRestores) {
  const at::Tensor x = at::randn({4, 8}), w = at::randn({3, 8});
  EXPECT_EQ(at::linear(x, w).scalar_type(), at::kFloat);
  {
    AmpScope on(kCpu, true);
    EXPECT_EQ(at::linear(x, w).scalar_type(), at::kBFloat16);
    EXPECT_EQ((x * 2 + 1).scalar_type(), at::kFloat);               // elementwise keeps fp32
    EXPECT_EQ((at::linear(x, w) + at::randn({4, 3})).scalar_type(), at::kFloat);  // promotes back
    {
      AmpScope off(kCpu, false);
      EXPECT_EQ(at::linear(x, w).scalar_type(), at::kFloat);
    }
    EXPECT_EQ(at::linear(x, w).scalar_type(), at::kBFloat16);         // the inner scope restored "on"
  }
  EXPECT_EQ(at::linear(x, w).scalar_type(), at::kFloat);
}

// What the sign-SGD loop does per linear, under amp: qdq in fp32 (bit-identical to outside the
// scope), the matmul in bf16, and fp32 gradients on fp32 leaves v, α, β.
TEST(Amp, TrainableParamsAndQdqStayFp32) {
  at::manual_seed(1);
  const at::Tensor w = at::randn({64, 128}), x = at::randn({16, 128});
  for (const char* name : {"W4A16", "W2A16G64", "MXFP4"}) {
    const QuantScheme s = parse_scheme(name);
    WeightQuantParams p = make_weight_params(w, s, TuneMode::V1, at::Tensor());
    const at::Tensor ref = qdq_weight(w, s, p).w_hat.detach();
    AmpScope amp(kCpu, true);
    const at::Tensor w_hat = qdq_weight(w, s, p).w_hat;
    EXPECT_EQ(w_hat.scalar_type(), at::kFloat) << name;
    EXPECT_TRUE(at::equal(w_hat.detach(), ref)) << name << ": the weight qdq changed under amp";
    const at::Tensor y = at::linear(x, w_hat);
    EXPECT_EQ(y.scalar_type(), at::kBFloat16) << name;
    y.to(at::kFloat).pow(2).sum().backward();
    for (const at::Tensor* t : {&p.t.v, &p.t.alpha, &p.t.beta}) {
      if (!t->defined()) continue;
      EXPECT_EQ(t->scalar_type(), at::kFloat) << name;
      ASSERT_TRUE(t->grad().defined()) << name;
      EXPECT_EQ(t->grad().scalar_type(), at::kFloat) << name;
      EXPECT_GT(t->grad().abs().sum().item<double>(), 0.0) << name;
    }
  }
}

test::RandomModelSpec dense(int64_t hidden, int64_t intermediate) {
  test::RandomModelSpec s;
  s.hidden = hidden;
  s.intermediate = intermediate;
  s.heads = 4;
  s.kv_heads = 2;
  return s;
}

// The fp32 block loss of a tuned result against the FP outputs (how the result is judged).
double fp32_loss(const Block0& f, const UnitResult& r) {
  at::NoGradGuard ng;
  auto y = unit_forward(f.model->config(), r.quantized, {nullptr}, f.in.x_in.all(), f.model->rope(64));
  return (y - f.in.y_ref.all()).pow(2).mean().item<double>();
}

TEST(Amp, TuningLandsNearFp32AndOffIsFp32BitForBit) {
  auto f = block0(dense(128, 256));
  const ModelConfig& c = f->model->config();
  for (const char* name : {"W2A16G64", "W4A16", "MXFP4"}) {
    const LayerPlan plan = make_layer_plan(*f->model, {parse_scheme(name), "", false});
    TuneOptions opt;
    opt.iters = 20;
    opt.method = Method::Rtn;
    const double rtn = fp32_loss(*f, quantize_unit(c, plan, f->in, f->model->rope(64), opt));
    opt.method = Method::SignRound;
    const UnitResult fp = quantize_unit(c, plan, f->in, f->model->rope(64), opt);
    UnitResult fp_in_autocast;
    {
      AmpScope outer(kCpu, true);  // amp off must mean fp32 whatever the caller's autocast state
      fp_in_autocast = quantize_unit(c, plan, f->in, f->model->rope(64), opt);
    }
    opt.amp = true;
    const UnitResult amp = quantize_unit(c, plan, f->in, f->model->rope(64), opt);
    EXPECT_EQ(fp.stats["compute_dtype"], "fp32");
    EXPECT_EQ(amp.stats["compute_dtype"], "bf16");
    EXPECT_TRUE(same_layers(fp, fp_in_autocast)) << name;
    EXPECT_FALSE(same_layers(fp, amp)) << name << ": amp changed nothing; is autocast on?";
    const double l_fp = fp32_loss(*f, fp), l_amp = fp32_loss(*f, amp);
    std::printf("%-9s block loss: RTN %.4g  fp32-tuned %.4g  amp-tuned %.4g\n", name, rtn, l_fp, l_amp);
    EXPECT_LT(l_amp, rtn) << name;
    EXPECT_NEAR(l_amp, l_fp, 0.05 * l_fp) << name;
    EXPECT_NEAR(amp.stats["loss_best"].get<double>(), fp.stats["loss_best"].get<double>(),
                0.05 * fp.stats["loss_best"].get<double>()) << name;
  }
}

// The forward's amp-specific casts: Qwen3's q/k RMSNorm on a bf16 q, a MoE block's bf16 expert
// outputs summed into fp32 (index_add refuses mixed dtypes), Qwen2-MoE's shared expert.
TEST(Amp, MoeAndQkNormBlocksTuneUnderAmp) {
  for (const char* arch : {"Qwen3MoeForCausalLM", "Qwen2MoeForCausalLM"}) {
    test::RandomModelSpec s = dense(64, 64);
    s.arch = arch;
    s.experts = 4;
    auto f = block0(s);
    const LayerPlan plan = make_layer_plan(*f->model, {parse_scheme("W4A16"), "", false});
    TuneOptions opt;
    opt.iters = 5;
    const UnitResult fp = quantize_unit(f->model->config(), plan, f->in, f->model->rope(64), opt);
    opt.amp = true;
    const UnitResult amp = quantize_unit(f->model->config(), plan, f->in, f->model->rope(64), opt);
    EXPECT_EQ(amp.stats["compute_dtype"], "bf16") << arch;
    EXPECT_NEAR(fp32_loss(*f, amp), fp32_loss(*f, fp), 0.05 * fp32_loss(*f, fp)) << arch;
  }
}

TEST(Amp, DeltaLossUnderAmpScoresLikeFp32) {
  test::TempDir dir;
  test::RandomModelSpec s;
  s.layers = 2;
  auto m = Model::open(test::write_random_hf_model(dir.path(), s));
  std::vector<ScoredLayer> layers;
  for (int64_t b = 0; b < 2; ++b)
    for (int p = llama::Q; p <= llama::Down; ++p) layers.push_back({test::layer_name(b, p), b, p});
  at::manual_seed(2);
  const at::Tensor tokens = at::randint(3, 96, {4, 32}, at::kLong);
  DeltaLossOptions opt;
  opt.progress = false;
  opt.weight_term = true;
  for (DeltaLossTarget target : {DeltaLossTarget::Labels, DeltaLossTarget::FullPrecision}) {
    opt.target = target;
    opt.amp = false;
    const DeltaLossScores fp = deltaloss_scores(*m, layers, preset_scheme("MXFP4"), tokens, opt);
    const nlohmann::json fp_key = deltaloss_cache_key(*m, layers, preset_scheme("MXFP4"), tokens, opt);
    opt.amp = true;
    const DeltaLossScores amp = deltaloss_scores(*m, layers, preset_scheme("MXFP4"), tokens, opt);
    EXPECT_NE(deltaloss_cache_key(*m, layers, preset_scheme("MXFP4"), tokens, opt), fp_key);
    EXPECT_FALSE(fp.to_json().contains("compute_dtype"));  // fp32 records read as before
    EXPECT_EQ(amp.to_json()["compute_dtype"], "bf16");
    EXPECT_TRUE(DeltaLossScores::from_json(amp.to_json()).amp);
    EXPECT_NEAR(amp.mean_loss, fp.mean_loss, 0.01 * std::abs(fp.mean_loss));
    bool differs = false;
    for (size_t i = 0; i < layers.size(); ++i) {
      EXPECT_NEAR(amp.score[i], fp.score[i], 0.1 * fp.score[i]) << layers[i].name;
      differs |= amp.score[i] != fp.score[i];
    }
    EXPECT_TRUE(differs) << "amp changed no score; is autocast on?";
  }
}

TEST(Amp, CliDefaultsToAmpWhereSupportedAndFallsBack) {
  const std::string model = test::repo("demo/tinystories-llama-4m");
  const std::string common = " quantize --quiet --threads 2 --model " + model + " --dataset " +
                             test::repo("demo/calib.txt") + " --nsamples 4 --seqlen 32 --iters 2 --scheme W4A16";
  auto run = [&](const std::string& env, const std::string& extra) {
    test::TempDir dir;
    auto r = test::run_command(env + test::cli() + common + extra + " --output_dir " + (dir / "out"));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(std::ifstream(dir / "out/signround_run.json"));
  };
  const bool native = bf16_compute_supported(kCpu);
  const nlohmann::json def = run("", ""), off = run("", " --disable_amp"), none = run("SIGNROUND_NO_BF16=1 ", "");
  EXPECT_EQ(def["compute_dtype"], native ? "bf16" : "fp32");
  EXPECT_EQ(def["settings"]["cache_bf16"], native);
  const nlohmann::json forced = run("SIGNROUND_NO_BF16=1 ", " --enable_amp");  // asked for: emulated bf16
  EXPECT_EQ(forced["compute_dtype"], "bf16");
  EXPECT_EQ(forced["settings"]["cache_bf16"], true);
  for (const nlohmann::json* j : {&off, &none}) {
    EXPECT_EQ((*j)["compute_dtype"], "fp32");
    EXPECT_EQ((*j)["settings"]["amp"], false);
    EXPECT_EQ((*j)["settings"]["cache_bf16"], false);
  }
  const nlohmann::json rtn = run("", " --iters 0");  // nothing tuned: nothing for amp to do
  EXPECT_EQ(rtn["compute_dtype"], "fp32");
  EXPECT_EQ(rtn["settings"]["cache_bf16"], false);
}

}  // namespace
}  // namespace sr
