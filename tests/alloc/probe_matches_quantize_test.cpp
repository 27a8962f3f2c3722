// What alloc/ measures is what tune/ writes (issue 12): the KLD probe behind --measure_kld and
// --refine, run on a uniform assignment, gives the KLD of the model that quantize --iters 0
// writes (quantize_unit block by block; static activation schemes take the range of the tensor
// at hand, as the probe measures them), for every scheme family — NVFP4 included, whose q/k/v
// and gate/up share a fused global scale (§1.4); before quant/block_quant.h the probe did not
// fuse. Both encoders: RTN (--disable_opt_rtn, ProbeEncoder::Rtn) and optimized RTN (the
// default, ProbeEncoder::OptRtn), whose importance is Σx² of each linear's input in the FP model
// on the same tokens — the imatrix quantize collects on its FP pass.
#include <gtest/gtest.h>

#include "alloc/kld_probe.h"
#include "random_model.h"
#include "testutil.h"
#include "quant/layer_plan.h"
#include "tune/unit_quantizer.h"

namespace sr {
namespace {

// KLD of the quantize_unit model (RTN or opt-RTN) to the FP model on `tokens`, all rows in one batch.
double quantize_unit_kld(const Model& m, const QuantScheme& s, const at::Tensor& tokens, Method method) {
  at::NoGradGuard ng;
  const ModelConfig& c = m.config();
  PlanOptions po;
  po.scheme = s;
  const LayerPlan plan = make_layer_plan(m, po);
  const int64_t T = tokens.size(1);
  const at::Tensor positions = at::arange(T, at::kLong);
  const RopeTables& rope = m.rope(T);
  TuneOptions opt;
  opt.method = method;
  opt.iters = 0;
  at::Tensor h = m.embed(tokens), h_fp = h;
  for (int64_t b = 0; b < c.n_layers; ++b) {
    UnitInput in;
    in.blocks = {b};
    in.fp = {m.load_block(b)};
    InputHook observe = [&](int p, const at::Tensor& x) {  // Σx² of each linear's FP input
      const at::Tensor sq = x.reshape({-1, x.size(-1)}).pow(2).sum(0);
      at::Tensor& acc = in.imatrix[linear_name(m.block_desc(b), b, p)];
      acc = acc.defined() ? acc + sq : sq;
      return x;
    };
    const at::Tensor next_fp = block_forward(c, in.fp[0], h_fp, positions, rope, observe);
    in.x_in = h;  // its size is the token count of the imatrix
    const UnitResult r = quantize_unit(c, plan, in, rope, opt);
    BlockSchemes schemes = unquantized_block(m.block_desc(b));
    for (int p = 0; p < int(schemes.size()); ++p)
      if (const LayerChoice* l = plan.find(b, p)) schemes[size_t(p)] = l->scheme;
    h = block_forward(c, r.quantized[0], h, positions, rope, block_activation_hook(schemes, {}, StaticRange::ThisTensor));
    h_fp = next_fp;
  }
  const at::Tensor lp = at::log_softmax(m.logits(h_fp), -1), lq = at::log_softmax(m.logits(h), -1);
  return (lp.exp() * (lp - lq)).sum(at::kDouble).item<double>() / double(tokens.numel());
}

TEST(ProbeMatchesQuantize, EverySchemeFamily) {
  test::TempDir dir;
  test::RandomModelSpec spec;
  spec.arch = "Qwen2ForCausalLM";  // q/k/v biases too
  auto m = Model::open(test::write_random_hf_model(dir.path(), spec));
  const at::Tensor tokens = at::randint(m->config().vocab, {3, 16}, at::TensorOptions().dtype(at::kLong));
  QuantScheme nv_w = preset_scheme("NVFP4");  // weight-only NVFP4: the fused global scale alone
  nv_w.act_bits = 16;
  const std::vector<std::pair<std::string, QuantScheme>> schemes = {
      {"W2A16G64", preset_scheme("W2A16G64")}, {"W4A16", preset_scheme("W4A16")},
      {"MXFP4", preset_scheme("MXFP4")},       {"MXFP8", preset_scheme("MXFP8")},
      {"NVFP4", preset_scheme("NVFP4")},       {"NVFP4 weight-only", nv_w},
      {"FP8_STATIC", preset_scheme("FP8_STATIC")}, {"gguf:q4_0", preset_scheme("gguf:q4_0")}};
  for (const auto& [method, encoder] : {std::make_pair(Method::Rtn, ProbeEncoder::Rtn),
                                        std::make_pair(Method::OptRtn, ProbeEncoder::OptRtn)}) {
    KldProbe probe(*m, tokens, /*batch=*/3, encoder);
    for (const auto& [name, s] : schemes) {
      SCOPED_TRACE(name + (method == Method::Rtn ? " rtn" : " opt_rtn"));
      std::vector<BlockSchemes> a(size_t(m->config().n_layers));
      for (BlockSchemes& b : a) b.assign(m->block_desc(0).linears.size(), s);
      const double want = quantize_unit_kld(*m, s, tokens, method);
      EXPECT_GT(want, 1e-7);
      EXPECT_NEAR(probe.kld(a), want, 1e-5 * want);
    }
  }
}

}  // namespace
}  // namespace sr
