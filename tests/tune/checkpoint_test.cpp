// Recomputation inside the block (model/block_checkpoint.h, common/checkpoint.h): the gradients
// that reach the quantization parameters v, α, β and the block's input equal those of the plain
// forward (dense, Qwen3 q/k-norm, and MoE blocks whose experts are qdq'd lazily inside the
// recompute; fp32 and amp), a tuned block is the same bytes with checkpointing on and off, and
// the graph estimate that decides "auto" is smaller with it at long sequences.
#include "model/block_checkpoint.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "common/amp.h"
#include "common/checkpoint.h"
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

test::RandomModelSpec spec(const std::string& arch) {
  test::RandomModelSpec s;
  s.hidden = 64;
  s.intermediate = 96;
  s.heads = 4;
  s.kv_heads = 2;
  s.arch = arch;
  if (arch.find("Moe") != std::string::npos) s.experts = 4;
  return s;
}

// Every gradient of one forward and backward of block 0 with each linear's weight qdq'd from
// its own parameters (as tuning does; MoE experts lazily, inside the forward), keyed by name.
std::map<std::string, at::Tensor> gradients(const Block0& f, const QuantScheme& s, bool checkpointed, bool amp) {
  const ModelConfig& c = f.model->config();
  const BlockWeights& fp = f.in.fp[0];
  const BlockDesc d = describe_block(c, 0);
  std::vector<WeightQuantParams> p(fp.w.size());
  BlockWeights w = fp;
  for (size_t i = 0; i < fp.w.size(); ++i) {
    p[i] = make_weight_params(fp.w[i], s, TuneMode::V1, at::Tensor());
    if (d.linears[i].expert < 0) w.w[i] = qdq_weight(fp.w[i], s, p[i]).w_hat;
    else w.w[i] = at::Tensor();
  }
  w.lazy = [&](int i) { return qdq_weight(fp.w[size_t(i)], s, p[size_t(i)]).w_hat; };
  const int64_t T = f.in.x_in.size(1);
  const at::Tensor x = f.in.x_in.all().narrow(0, 0, 4).clone().requires_grad_(true);
  {
    AmpScope scope(at::Device(at::kCPU), amp);
    const at::Tensor pos = at::arange(T, at::kLong);
    const at::Tensor y = checkpointed ? block_forward_checkpointed(c, w, x, pos, f.model->rope(T))
                                      : block_forward(c, w, x, pos, f.model->rope(T));
    (y.to(at::kFloat) - f.in.y_ref.all().narrow(0, 0, 4)).pow(2).mean().backward();
  }
  std::map<std::string, at::Tensor> g = {{"x", x.grad()}};
  for (size_t i = 0; i < p.size(); ++i)
    for (auto [name, t] : {std::pair<const char*, at::Tensor*>{"v", &p[i].t.v}, {"alpha", &p[i].t.alpha}, {"beta", &p[i].t.beta}})
      if (t->defined() && t->grad().defined()) g[d.linears[i].label + "." + name] = t->grad();
  return g;
}

TEST(Checkpoint, GradientsEqualThoseWithoutRecompute) {
  for (const char* arch : {"LlamaForCausalLM", "Qwen3ForCausalLM", "Qwen3MoeForCausalLM", "Qwen2MoeForCausalLM"}) {
    auto f = block0(spec(arch));
    for (bool amp : {false, true}) {
      const auto plain = gradients(*f, parse_scheme("W4A16"), false, amp);
      const auto ckpt = gradients(*f, parse_scheme("W4A16"), true, amp);
      ASSERT_EQ(plain.size(), ckpt.size()) << arch;
      EXPECT_GT(plain.size(), 8u) << arch;  // x and the v, α, β of several linears
      // Each gradient within 1e-5 of the largest gradient of the same linear's parameters (or of
      // x): a parameter whose gradient is analytically ~0 (k's α behind Qwen3's k RMSNorm, a
      // one-row shared-expert gate's α) is compared at the scale of its linear, not of its noise.
      // The recompute multiplies one kv head at a time, other GEMM shapes whose rounding differs
      // by CPU (within 1e-6 on the 2.80 GHz machine, 2e-6 on a 2.30 GHz one); a wrong gradient
      // differs at the scale itself.
      std::map<std::string, double> scale;
      for (const auto& [name, g] : plain) {
        double& m = scale[name.substr(0, name.rfind('.'))];
        m = std::max(m, g.abs().max().item<double>());
      }
      int identical = 0;
      for (const auto& [name, g] : plain) {
        ASSERT_TRUE(ckpt.count(name)) << arch << " " << name;
        const at::Tensor& h = ckpt.at(name);
        const double s = scale[name.substr(0, name.rfind('.'))];
        ASSERT_GT(s, 0.0) << arch << " " << name;
        EXPECT_LE((g - h).abs().max().item<double>(), 1e-5 * s) << arch << " amp " << amp << " " << name;
        identical += at::equal(g, h);
      }
      std::printf("%-20s amp %d: %d of %zu gradients bit-identical\n", arch, amp, identical, plain.size());
    }
  }
}

// Leaves that only the closure reads still get their gradient (the zero-size input), and
// without grad mode the function is simply called.
TEST(Checkpoint, ClosureLeavesAndNoGradMode) {
  const at::Tensor a = at::randn({5}).requires_grad_(true), x = at::randn({5});
  auto fn = [&a](const std::vector<at::Tensor>& in) { return std::vector<at::Tensor>{(in[0] * a).sin()}; };
  checkpoint(fn, {x})[0].sum().backward();
  ASSERT_TRUE(a.grad().defined());
  EXPECT_TRUE(at::allclose(a.grad(), x * (x * a).cos()));
  at::NoGradGuard ng;
  EXPECT_FALSE(checkpoint(fn, {x})[0].requires_grad());
}

TEST(Checkpoint, TunedBlockIsTheSameWithAndWithout) {
  for (const char* arch : {"LlamaForCausalLM", "Qwen3MoeForCausalLM"}) {
    auto f = block0(spec(arch));
    const ModelConfig& c = f->model->config();
    for (const char* name : {"W4A16", "W2A16G64"}) {
      const LayerPlan plan = make_layer_plan(*f->model, {parse_scheme(name), "", false});
      TuneOptions opt;
      opt.iters = 6;
      opt.batch_size = 4;
      opt.checkpoint = Checkpoint::Off;
      const UnitResult off = quantize_unit(c, plan, f->in, f->model->rope(64), opt);
      opt.checkpoint = Checkpoint::On;
      const UnitResult on = quantize_unit(c, plan, f->in, f->model->rope(64), opt);
      EXPECT_FALSE(off.stats["checkpoint"].get<bool>());
      EXPECT_TRUE(on.stats["checkpoint"].get<bool>());
      EXPECT_EQ(on.stats["loss_best"], off.stats["loss_best"]) << arch << " " << name;
      EXPECT_TRUE(same_layers(on, off)) << arch << " " << name;
    }
  }
}

TEST(Checkpoint, GraphEstimateAndAutoRule) {
  ModelConfig c;  // the Llama-3.2-1B shape
  c.hidden = 2048;
  c.intermediate = 8192;
  c.n_heads = 32;
  c.n_kv_heads = 8;
  c.head_dim = 64;
  const int64_t plain = tuning_graph_bytes(c, 8, 2048, 1, false), ckpt = tuning_graph_bytes(c, 8, 2048, 1, true);
  EXPECT_GT(plain, int64_t(12) << 30);  // scores and softmax alone: 8 x 32 x 2048² x 4 B = 4 GiB each
  EXPECT_LT(ckpt, plain / 3);
  EXPECT_GT(tuning_graph_bytes(c, 8, 2048, 2, false), plain);  // a unit of two blocks keeps both
  TuneOptions opt;
  opt.batch_size = 8;
  opt.checkpoint = Checkpoint::Auto;
  EXPECT_FALSE(use_checkpointing(c, opt, 2048, 1));  // no budget: never
  opt.graph_budget = int64_t(6) << 30;
  EXPECT_TRUE(use_checkpointing(c, opt, 2048, 1));
  EXPECT_FALSE(use_checkpointing(c, opt, 256, 1));
  opt.checkpoint = Checkpoint::Off;
  EXPECT_FALSE(use_checkpointing(c, opt, 2048, 1));
  opt.checkpoint = Checkpoint::On;
  EXPECT_TRUE(use_checkpointing(c, opt, 256, 1));
}

}  // namespace
}  // namespace sr
