// The dispatcher, table-driven over every registered scheme (style.md #5: adding a preset runs
// these tests for it): idempotence, nearest-grid rounding (|w - ŵ| is at most half a step and
// saturates at the ends), zeros, decode(encode(w)) == qdq(w) bit for bit, padding, gradients,
// activation qdq; plus the §3.3 searches, §3.3.4 zero handling and RTN / optimized RTN.
#include "tensor_asserts.h"
#include "quant/qdq.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "quant/formats/fp_codecs.h"

namespace sr {
namespace {
using test::same_bits;

at::Tensor weight(int64_t o, int64_t i, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto w = at::randn({o, i}, gen) * 0.02;
  w.index_put_({at::indexing::Slice(), 5}, 0.0f);
  w[3].zero_();               // an all-zero row (all-zero groups)
  w[0][1] = 0.4f;             // an outlier
  return w;
}

std::vector<std::pair<std::string, QuantScheme>> quantized_presets() {
  std::vector<std::pair<std::string, QuantScheme>> out;
  for (const auto& p : preset_schemes())
    if (p.second.quantized()) out.push_back(p);
  return out;
}

// Every representable value of a group: decode() with every code at every position.
std::vector<at::Tensor> grid(const Encoded& e, const QuantScheme& s) {
  std::vector<at::Tensor> out;
  const int n_codes = s.data_type == DataType::Int ? (1 << s.bits) : (s.bits == 4 ? 16 : 256);
  for (int c = 0; c < n_codes; ++c) {
    Encoded g = e;
    g.codes = at::full_like(e.codes, c);
    auto v = decode_weight(g, s);
    if (!at::isnan(v).any().item<bool>()) out.push_back(v);  // skip the E4M3 NaN codes
  }
  return out;
}

TEST(AllSchemes, QdqIsIdempotent) {
  for (const auto& [name, s] : quantized_presets()) {
    SCOPED_TRACE(name);
    auto w = weight(64, 256, 1);
    WeightQuantParams p;
    if (s.data_type == DataType::NvFp) p.global_scale = nvfp::global_scale(w);
    auto once = qdq_weight(w, s, p).w_hat;
    auto twice = qdq_weight(once, s, p).w_hat;
    if (s.data_type == DataType::Fp8) {
      // s' = amax(ŵ)/448 may differ from s in the last bit: ŵ is stable to 1 ulp
      EXPECT_LE((twice - once).abs().max().item<float>(), 2e-7f * once.abs().max().item<float>());
    } else {
      // equal values; a -0.0 element (MX/NV keep the sign of a value that rounds to zero)
      // comes back as +0.0, which is why this compares values and not bits
      EXPECT_TRUE(at::equal(twice, once));
    }
  }
}

TEST(AllSchemes, RoundsToTheNearestGridValueAndSaturates) {
  for (const auto& [name, s] : quantized_presets()) {
    SCOPED_TRACE(name);
    for (int64_t in : {256, 200}) {  // 200: padding for every group size but 0 / -1
      auto w = weight(8, in, 2);
      auto r = rtn(w, s);
      auto best = at::full_like(w, INFINITY);
      for (const auto& g : grid(r.encoded, s)) best = at::minimum(best, (w - g).abs());
      auto err = (w - r.w_hat).abs();
      // ŵ is a nearest representable value (ties: either neighbour), up to fp32 rounding of
      // the grid itself; for in-range elements this is |w - ŵ| <= half a step.
      auto slack = (err - best) - (w.abs() * 1e-6 + 1e-12);
      EXPECT_LE(slack.max().item<float>(), 0.0f) << "in=" << in;
    }
  }
}

TEST(AllSchemes, ZerosGiveZerosAndFiniteScales) {
  for (const auto& [name, s] : quantized_presets()) {
    SCOPED_TRACE(name);
    auto z = at::zeros({32, 128});
    auto r = rtn(z, s);
    EXPECT_TRUE(same_bits(r.w_hat, z));  // +0.0 everywhere
    auto q = qdq_weight(weight(32, 128, 3), s, rtn(weight(32, 128, 3), s).params);
    EXPECT_TRUE(at::isfinite(q.scale).all().item<bool>());
    EXPECT_TRUE(at::isfinite(q.w_hat).all().item<bool>());
    EXPECT_TRUE(at::all(q.w_hat[3] == 0).item<bool>());  // the all-zero row
    auto sc = r.encoded.scales.to(at::kFloat);
    if (s.data_type == DataType::MxFp) sc = codec::e8m0_decode(r.encoded.scales);
    if (s.data_type == DataType::NvFp) sc = codec::e4m3_decode(r.encoded.scales);
    EXPECT_TRUE(at::isfinite(sc).all().item<bool>());
  }
}

TEST(AllSchemes, DecodeOfEncodeEqualsQdqIncludingTunedParameters) {
  for (const auto& [name, s] : quantized_presets()) {
    for (auto mode : {TuneMode::V1, TuneMode::V2}) {
      SCOPED_TRACE(name + (mode == TuneMode::V2 ? " v2" : " v1"));
      for (int64_t in : {256, 200}) {
        auto w = weight(16, in, 4);
        auto p = make_weight_params(w, s, mode);
        {
          at::NoGradGuard ng;  // a tuned-looking state
          auto gen = at::make_generator<at::CPUGeneratorImpl>(9);
          p.t.v.copy_(at::rand(p.t.v.sizes(), gen) - 0.5);
          p.t.beta.copy_(at::rand(p.t.beta.sizes(), gen) + 0.5);
          if (p.t.alpha.defined()) p.t.alpha.copy_(at::rand(p.t.alpha.sizes(), gen) + 0.2);
        }
        clamp_params_(p);
        auto e = encode_weight(w, s, p);
        EXPECT_TRUE(same_bits(decode_weight(e, s), qdq_weight(w, s, p).w_hat)) << "in=" << in;
        EXPECT_EQ(e.codes.sizes(), w.sizes());
      }
    }
  }
}

TEST(AllSchemes, GradientsReachVAndScaleMultipliers) {
  for (const auto& [name, s] : quantized_presets()) {
    for (auto mode : {TuneMode::V1, TuneMode::V2}) {
      SCOPED_TRACE(name + (mode == TuneMode::V2 ? " v2" : " v1"));
      auto w = weight(16, 256, 5);
      auto p = make_weight_params(w, s, mode);
      EXPECT_EQ(p.range.hi, mode == TuneMode::V2 && uses_v2_wrapper(s) ? 2.0f : 1.0f);
      auto r = qdq_weight(w, s, p);
      auto target = w * 1.01 + 0.001;
      (r.w_hat - target).square().sum().backward();
      EXPECT_GT(p.t.v.grad().abs().sum().item<float>(), 0.0f);
      EXPECT_TRUE(at::isfinite(p.t.v.grad()).all().item<bool>());
      EXPECT_GT(p.t.beta.grad().abs().sum().item<float>(), 0.0f);
      EXPECT_TRUE(at::isfinite(p.t.beta.grad()).all().item<bool>());
      if (p.t.alpha.defined()) EXPECT_TRUE(at::isfinite(p.t.alpha.grad()).all().item<bool>());
    }
  }
}

TEST(Params, ShapesModesAndClamp) {
  auto w = weight(8, 200, 6);
  auto p = make_weight_params(w, preset_scheme("W4A16"), TuneMode::V1);
  EXPECT_EQ(p.t.v.sizes(), (at::IntArrayRef{16, 128}));  // 200 -> 2 groups of 128, padded
  EXPECT_EQ(p.t.alpha.sizes(), (at::IntArrayRef{16}));
  EXPECT_FALSE(p.t.init_scale.defined());
  EXPECT_TRUE(p.t.v.requires_grad() && p.t.beta.requires_grad());
  auto p2 = make_weight_params(w, preset_scheme("W2A16"), TuneMode::V2);
  EXPECT_FALSE(p2.t.alpha.defined());
  EXPECT_EQ(p2.t.init_scale.sizes(), (at::IntArrayRef{16}));
  {
    at::NoGradGuard ng;
    p2.t.beta.fill_(3.0f);
    p.t.alpha.fill_(-1.0f);
  }
  clamp_params_(p2);
  clamp_params_(p);
  EXPECT_TRUE(at::all(p2.t.beta == 2.0f).item<bool>());
  EXPECT_TRUE(at::all(p.t.alpha == 0.0f).item<bool>());
  // asym keeps the v1 wrapper in v2 runs (§3.1)
  auto pa = make_weight_params(w, parse_scheme("bits=4,sym=false"), TuneMode::V2);
  EXPECT_TRUE(pa.t.alpha.defined());
  EXPECT_FALSE(pa.t.init_scale.defined());
  EXPECT_EQ(pa.range.hi, 1.0f);
  // v2 at beta = 1, v = 0 reproduces the searched scale exactly (tuning starts from it)
  auto q = qdq_weight(w, preset_scheme("W2A16"), make_weight_params(w, preset_scheme("W2A16"), TuneMode::V2));
  auto s16 = search_init_scale(w, preset_scheme("W2A16")).to(at::kHalf).to(at::kFloat);
  EXPECT_TRUE(at::equal(q.scale, s16));
  EXPECT_THROW(make_weight_params(w, preset_scheme("BF16"), TuneMode::V1), sr::Error);
}

TEST(Activations, QdqPerSchemeKeepsShapeAndPassesGradient) {
  for (const auto& [name, s] : preset_schemes()) {
    SCOPED_TRACE(name);
    auto x = (at::randn({2, 5, 64}) * 3).set_requires_grad(true);
    ActQuantState st;
    st.act_max = at::tensor(10.0f);
    auto y = qdq_act(x, s, st);
    EXPECT_EQ(y.sizes(), x.sizes());
    if (!s.act_quantized()) {
      EXPECT_TRUE(y.is_same(x));
      continue;
    }
    EXPECT_TRUE(at::isfinite(y).all().item<bool>());
    EXPECT_LE((y - x).abs().max().item<float>(), 0.3f * x.abs().max().item<float>());
    y.sum().backward();
    EXPECT_GT(x.grad().abs().sum().item<float>(), 0.0f);
  }
  // static FP8 needs its calibrated max; NV static gs comes from act_max
  EXPECT_THROW(qdq_act(at::randn({4, 64}), preset_scheme("FP8_STATIC")), sr::Error);
  auto x = at::randn({4, 64});
  ActQuantState a{at::tensor(1.0f), {}}, b{at::tensor(100.0f), {}};
  EXPECT_FALSE(at::equal(qdq_act(x, preset_scheme("NVFP4"), a), qdq_act(x, preset_scheme("NVFP4"), b)));
  // per-token INT8: each token row has its own scale
  auto rows = at::cat({at::randn({1, 64}), at::randn({1, 64}) * 100});
  auto yq = qdq_act(rows, preset_scheme("INT8"));
  EXPECT_LT((yq[0] - rows[0]).abs().max().item<float>(), 0.05f);
}

TEST(Activations, StaticFp8ActMaxScaleIsTunable) {
  auto x = at::randn({4, 64});
  auto scale = at::tensor(0.8f).set_requires_grad(true);
  ActQuantState st{at::tensor(5.0f), scale};
  auto y = qdq_act(x, preset_scheme("FP8_STATIC"), st);
  (y - x * 1.1).square().sum().backward();
  EXPECT_TRUE(scale.grad().defined());
  EXPECT_NE(scale.grad().item<float>(), 0.0f);
}

// ----------------------------------------------------------------------------- searches

double weighted_error(const at::Tensor& w, const at::Tensor& w_hat, const at::Tensor& imatrix) {
  return ((w - w_hat).square() * imatrix.reshape({1, -1})).sum().item<double>();
}

TEST(IntSearch, FusedLoopMatchesReferenceAndNeverLosesToBaseline) {
  for (int bits : {2, 3, 4, 8}) {
    SCOPED_TRACE(bits);
    auto w = weight(32, 128, 7);
    auto g = group_layout(w.sizes(), 64);
    auto wg = to_groups(w, g, 0.0);
    auto imp = at::rand({g.n_groups, g.length}, at::make_generator<at::CPUGeneratorImpl>(3)) + 0.1;
    int_quant::Format f{bits, true, 64, true};
    auto fast = int_quant::search_init_scale(wg, f, imp);
    auto ref = int_quant::search_init_scale_reference(wg, f, imp);
    // Same candidate unless two candidates' losses tie to fp32 summation order.
    auto loss = [&](const at::Tensor& s) {
      auto l = at::clamp(at::round(wg / s.unsqueeze(1)), -(1 << (bits - 1)), (1 << (bits - 1)) - 1);
      return (imp * (s.unsqueeze(1) * l - wg).square()).sum(1);
    };
    EXPECT_TRUE(at::allclose(loss(fast), loss(ref), 1e-5, 1e-12));
    EXPECT_GE((fast == ref).to(at::kFloat).mean().item<float>(), 0.95f);
    // baseline candidate: s = -gmax/nmax
    auto idx = wg.abs().argmax(1, true);
    auto base = at::clamp_min((-wg.gather(1, idx).squeeze(1) / float(1 << (bits - 1))).abs(), 1e-5) *
                at::where(wg.gather(1, idx).squeeze(1) > 0, -1.0, 1.0);
    EXPECT_TRUE((loss(fast) <= loss(base) * (1 + 1e-4) + 1e-12).all().item<bool>());
    EXPECT_EQ(fast[3 * 2].item<float>(), 1e-5f);  // all-zero group -> +floor
    // the sign convention: the dominant extreme maps to -nmax
    EXPECT_LT(fast[0].item<float>() * wg[0][1].item<float>(), 0.0f);
  }
}

TEST(NvSearch, BlockLoopMatchesComposedReference) {
  auto w = weight(32, 128, 11);
  auto g = group_layout(w.sizes(), 16);
  auto wg = to_groups(w, g, 0.0);
  auto imp = at::rand({g.n_groups, 16}, at::make_generator<at::CPUGeneratorImpl>(4)) + 0.1;
  auto fast = nvfp::search_init_scale(wg, {}, imp);
  auto ref = nvfp::search_init_scale_reference(wg, {}, imp);
  auto gs = nvfp::global_scale(wg);
  auto loss = [&](const at::Tensor& init) {
    auto r = nvfp::qdq_reference(wg, {}, Tunables{{}, {}, {}, init}, gs).w_hat;
    return (imp * (r - wg).square()).sum(1);
  };
  EXPECT_TRUE(at::allclose(loss(fast), loss(ref), 1e-5, 1e-12));
  EXPECT_GE((fast == ref).to(at::kFloat).mean().item<float>(), 0.95f);
  EXPECT_TRUE((loss(fast) <= loss(at::ones_like(fast)) * (1 + 1e-5)).all().item<bool>());
}

TEST(Searches, OptimizedRtnIsNoWorseThanRtnUnderTheImatrix) {
  auto w = weight(64, 256, 8);
  auto imatrix = at::rand({256}, at::make_generator<at::CPUGeneratorImpl>(5)) * 4 + 0.05;
  for (const char* name : {"W2A16", "W3A16", "W4A16", "MXFP4", "MXFP8", "NVFP4"}) {
    SCOPED_TRACE(name);
    const auto s = preset_scheme(name);
    auto plain = rtn(w, s), opt = opt_rtn(w, s, imatrix);
    EXPECT_LE(weighted_error(w, opt.w_hat, imatrix), weighted_error(w, plain.w_hat, imatrix) * 1.001);
    EXPECT_TRUE(same_bits(decode_weight(opt.encoded, s), opt.w_hat));
    const auto init = opt.params.t.init_scale;
    if (s.data_type == DataType::MxFp)
      EXPECT_TRUE(((init == 0.5) | (init == 1.0) | (init == 2.0)).all().item<bool>());
    if (s.data_type == DataType::NvFp)
      EXPECT_TRUE(((init >= 0.5) & (init <= 1.51f)).all().item<bool>());
  }
  // schemes without a search fall back to plain RTN
  const auto fp8s = preset_scheme("FPW8A16");
  EXPECT_TRUE(same_bits(opt_rtn(w, fp8s, imatrix).w_hat, rtn(w, fp8s).w_hat));
  EXPECT_THROW(search_init_scale(w, fp8s), sr::Error);
}

TEST(Searches, ImatrixWeightingChangesTheChoice) {
  auto w = weight(64, 256, 9);
  auto ones = search_init_scale(w, preset_scheme("W2A16"));
  auto skew = at::ones({256});
  skew.narrow(0, 0, 16).fill_(1000.0f);
  auto weighted = search_init_scale(w, preset_scheme("W2A16"), skew);
  EXPECT_FALSE(at::equal(ones, weighted));
}

TEST(ImatrixHandleZero, Section334) {
  // four groups of 4: no zeros, 3 zeros (> L/2: fallback), 1 zero (mean fill), 2 zeros (mean fill)
  auto imp = at::tensor({1.f, 2.f, 3.f, 4.f, 0.f, 0.f, 0.f, 5.f, 2.f, 0.f, 4.f, 6.f, 0.f, 1.f, 0.f, 3.f}).reshape({4, 4});
  auto wg = at::tensor({.1f, .2f, .3f, .4f, -1.f, 2.f, -2.f, 1.f, .5f, .5f, .5f, .5f, 1.f, 1.f, 1.f, 1.f}).reshape({4, 4});
  auto low = imatrix_handle_zero(imp, wg, 2);
  EXPECT_TRUE(at::equal(low[0], imp[0]));
  EXPECT_TRUE(at::allclose(low[1], wg[1].abs()));  // bits <= 3: |w|
  EXPECT_TRUE(at::allclose(low[2], at::tensor({2.f, 4.f, 4.f, 6.f})));
  EXPECT_TRUE(at::allclose(low[3], at::tensor({2.f, 1.f, 2.f, 3.f})));
  auto high = imatrix_handle_zero(imp, wg, 4);
  const float av = std::sqrt((1.f + 4.f + 4.f + 1.f) / 32.f);  // sqrt(Σw²/32)
  EXPECT_TRUE(at::allclose(high[1], wg[1].abs() + av));
  auto nz = imp + 1;
  EXPECT_TRUE(imatrix_handle_zero(nz, wg, 2).is_same(nz));  // no zeros: untouched
}

TEST(Rtn, EncodesAndDecodesForEveryScheme) {
  for (const auto& [name, s] : quantized_presets()) {
    SCOPED_TRACE(name);
    auto w = weight(32, 128, 10);
    auto r = rtn(w, s);
    EXPECT_TRUE(same_bits(decode_weight(r.encoded, s), r.w_hat));
    EXPECT_LT((r.w_hat - w).abs().max().item<float>(), 0.5f * w.abs().max().item<float>());
  }
}

}  // namespace
}  // namespace sr
