// GGUF block types as schemes of the dispatcher (quant/gguf_qdq.h, quant/qdq.h, spec §3.6,
// §4.3, §5.4), for every ggml block type:
//   - RTN / optimized RTN are llama.cpp's own bytes (ref encoder; imatrix encoder), legacy
//     types included;
//   - decode(encode(w, v)) == qdq(w, v) == the composed reference, bit for bit, for tuned v;
//   - the straight-through gradient: ∂ŵ/∂v = s inside the code range, 0 where clamped or the
//     scale is 0, equal to the reference's autograd; ∂ŵ/∂w = 1 inside;
//   - the scheme side: names, JSON, fits, §4.3 bits and the true file bits; state files.
#include "quant/gguf_qdq.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "export/gguf_encode.h"
#include "quant/qdq.h"
#include "tensor_asserts.h"
#include "testutil.h"
#include "quant/quantized_layer.h"

namespace sr {
namespace {
using test::same_bits;

const std::vector<GgmlType> kTypes = {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
                                      GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K,
                                      GgmlType::Q5_K, GgmlType::Q6_K};

// [12, 512] with the corner cases of the encoders: an all-zero row, zero sub-blocks, an
// outlier, a row spanning decades (double-quantized scales that round to 0), a constant row.
at::Tensor weight(uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto w = at::randn({12, 512}, gen) * 0.02;
  w[3].zero_();
  w[4].narrow(0, 32, 64).zero_();
  w[0][1] = 0.4f;
  w[5] = w[5] * at::pow(10.0, (at::arange(512) / 16 % 8 - 6).to(at::kFloat));
  w[6].fill_(0.125f);
  return w;
}

at::Tensor importance(uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::rand({512}, gen) * 3 + 0.01;
}

// Offsets as after tuning: mostly small, some beyond the code range to exercise the clamp.
at::Tensor tuned_offsets(const at::Tensor& like, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto v = at::rand(like.sizes(), gen) - 0.5;
  v.view(-1).narrow(0, 0, 97).mul_(400.0);  // row 0 starts with clamped codes, even for Q8_0
  return v;
}

std::vector<uint8_t> bytes_of(const at::Tensor& t) {
  auto c = t.contiguous();
  return std::vector<uint8_t>(c.data_ptr<uint8_t>(), c.data_ptr<uint8_t>() + c.numel());
}

TEST(GgufRtn, IsLlamaCppsRefAndImatrixEncoderByteForByte) {
  const auto w = weight(1);
  const auto imp = importance(2);
  for (GgmlType t : kTypes) {
    SCOPED_TRACE(ggml_type_name(t));
    const QuantScheme s = gguf_scheme(t);
    RtnResult r = rtn(w, s);
    EXPECT_EQ(bytes_of(r.encoded.ggml), ggml_encode_rows(t, w.data_ptr<float>(), 12, 512));
    EXPECT_TRUE(same_bits(r.w_hat, decode_weight(r.encoded, s)));
    EXPECT_TRUE(same_bits(qdq_weight(w, s).w_hat, r.w_hat)) << "default parameters are RTN";
    RtnResult o = opt_rtn(w, s, imp);
    EXPECT_EQ(bytes_of(o.encoded.ggml), ggml_encode_rows(t, w.data_ptr<float>(), 12, 512, imp.data_ptr<float>()));
    // The pipeline re-encodes from the returned parameters: same bytes.
    EXPECT_EQ(bytes_of(encode_weight(w, s, o.params).ggml), bytes_of(o.encoded.ggml));
    EXPECT_THROW(qdq_weight(w, s, [&] { auto p = o.params; p.t.v = at::zeros({12, 512}); return p; }()), Error)
        << "RTN parameters take no offsets";
  }
}

TEST(GgufQdq, DecodeOfEncodeEqualsQdqAndReferenceWithTunedOffsets) {
  const auto w = weight(3);
  for (GgmlType t : kTypes) {
    for (TuneMode mode : {TuneMode::V1, TuneMode::V2}) {
      SCOPED_TRACE(ggml_type_name(t) + std::string(mode == TuneMode::V2 ? " v2" : " v1"));
      const QuantScheme s = gguf_scheme(t);
      WeightQuantParams p = make_weight_params(w, s, mode, importance(4));
      ASSERT_TRUE(p.ggml && !p.ggml->searched_codes);
      EXPECT_FALSE(p.t.alpha.defined() || p.t.beta.defined() || p.t.init_scale.defined()) << "only v is tuned";
      EXPECT_EQ(p.t.v.numel(), w.numel());
      {
        at::NoGradGuard ng;
        p.t.v.copy_(tuned_offsets(p.t.v, 5));
      }
      const at::Tensor fused = qdq_weight(w, s, p).w_hat;
      const Encoded e = encode_weight(w, s, p);
      EXPECT_EQ(e.ggml.sizes(), (at::IntArrayRef{12, int64_t(ggml_row_bytes(t, 512))}));
      EXPECT_TRUE(same_bits(decode_weight(e, s), fused));
      EXPECT_TRUE(same_bits(gguf_qdq::qdq_reference(w, *p.ggml, p.t.v), fused));
      // Zero offsets re-round against the searched parameters: the k-quants' bytes are then
      // llama.cpp's own (ref in V1; imatrix encoder in V2).
      if (ggml_type_traits(t).block_size == 256) {
        auto imp = importance(4);
        const auto want = mode == TuneMode::V2
                              ? ggml_encode_rows(t, w.data_ptr<float>(), 12, 512, imp.data_ptr<float>())
                              : ggml_encode_rows(t, w.data_ptr<float>(), 12, 512);
        EXPECT_EQ(bytes_of(gguf_qdq::encode(w, *p.ggml)), want);
      }
    }
  }
}

TEST(GgufQdq, StraightThroughGradientContract) {
  const auto w = weight(6);
  for (GgmlType t : kTypes) {
    SCOPED_TRACE(ggml_type_name(t));
    const auto f = gguf_qdq::freeze(w, t, importance(7), false);
    const at::Tensor v0 = tuned_offsets(w, 8);
    auto v = v0.clone().requires_grad_(true);
    auto x = w.clone().requires_grad_(true);
    const auto g = at::randn({12, 512}, at::make_generator<at::CPUGeneratorImpl>(9));
    (gguf_qdq::qdq(x, *f, v) * g).sum().backward();
    auto vr = v0.clone().requires_grad_(true);
    auto xr = w.clone().requires_grad_(true);
    (gguf_qdq::qdq_reference(xr, *f, vr) * g).sum().backward();
    EXPECT_TRUE(same_bits(v.grad(), vr.grad())) << "fused vs composed reference, d/dv";
    // The reference's d/dw is (g·s)/s, the contract's g up to one rounding.
    EXPECT_TRUE(at::allclose(x.grad(), xr.grad(), 1e-6, 0)) << "fused vs composed reference, d/dw";
    // The contract itself: dŵ/dv = s where the rounded code is in range, else 0; dŵ/dw = 1 there.
    const auto& row = f->row[0];
    const float* pv = v0.data_ptr<float>();
    const float* pw = w.data_ptr<float>();
    int64_t inside = 0, clamped = 0;
    for (int64_t e = 0; e < 512; ++e) {
      const float s = row.scale[size_t(e / row.group)], m = row.min[size_t(e / row.group)];
      const float u = (row.asymmetric ? (pw[e] + m) / s : pw[e] / s) + pv[e];
      const float l = std::nearbyint(u);
      const bool in = s != 0 && l >= row.code_min && l <= row.code_max;
      inside += in;
      clamped += !in;
      ASSERT_EQ(v.grad()[0][e].item<float>(), in ? g[0][e].item<float>() * s : 0.0f) << e;
      ASSERT_EQ(x.grad()[0][e].item<float>(), in ? g[0][e].item<float>() : 0.0f) << e;
    }
    EXPECT_GT(inside, 300);
    EXPECT_GT(clamped, 10) << "the test offsets must clamp some codes";
  }
}

TEST(GgufQdq, OffsetsMoveCodesAndTheOutputFollows) {
  // A positive offset never lowers a code (the value moves in the direction of the scale's
  // sign: ggml's symmetric scales may be negative); a large one saturates every code.
  const auto w = weight(10);
  for (GgmlType t : kTypes) {
    SCOPED_TRACE(ggml_type_name(t));
    const auto f = gguf_qdq::freeze(w, t, at::Tensor(), false);
    const int64_t group = f->row[0].group;
    auto s = at::empty({12, 512});
    for (int64_t r = 0; r < 12; ++r)
      for (int64_t e = 0; e < 512; ++e) s[r][e] = f->row[size_t(r)].scale[size_t(e / group)];
    const auto base = gguf_qdq::qdq(w, *f);
    const auto up = gguf_qdq::qdq(w, *f, at::full({12, 512}, 0.75f));
    EXPECT_TRUE(((up - base) * s >= 0).all().item<bool>());
    EXPECT_GT((up != base).sum().item<int64_t>(), 1000);
    const auto top = gguf_qdq::qdq(w, *f, at::full({12, 512}, 1000.0f));
    const auto& row = f->row[1];
    for (int64_t e = 0; e < 512; e += 37) {
      const float sc = row.scale[size_t(e / row.group)], m = row.min[size_t(e / row.group)];
      EXPECT_EQ(top[1][e].item<float>(), row.asymmetric ? sc * float(row.code_max) - m : sc * float(row.code_max));
    }
  }
}

TEST(GgufQdq, MisuseIsAnError) {
  const auto w = weight(11);
  EXPECT_THROW(gguf_qdq::freeze(w.narrow(1, 0, 200), GgmlType::Q4_K, at::Tensor(), false), Error);
  EXPECT_THROW(gguf_qdq::freeze(w, GgmlType::F16, at::Tensor(), false), Error);
  EXPECT_THROW(gguf_qdq::freeze(w, GgmlType::Q4_K, at::ones({100}), false), Error);
  const auto f = gguf_qdq::freeze(w, GgmlType::Q4_K, at::Tensor(), false);
  EXPECT_THROW(gguf_qdq::qdq(w.narrow(0, 0, 4), *f), Error);
  EXPECT_THROW(gguf_qdq::qdq(w, *f, at::zeros({12, 511})), Error);
  EXPECT_THROW(gguf_qdq::decode(at::zeros({2, 100}, at::kByte), GgmlType::Q4_K, 256), Error);
  auto bad = w.clone();
  bad[2][7] = NAN;
  EXPECT_THROW(gguf_qdq::encode(bad, *f), Error);
}

TEST(GgufScheme, NamesJsonAndValidation) {
  EXPECT_EQ(int(DataType::Gguf), 7);
  for (GgmlType t : kTypes) {
    const QuantScheme s = gguf_scheme(t);
    SCOPED_TRACE(s.name());
    std::string lower = ggml_type_name(t);
    for (char& ch : lower) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    EXPECT_EQ(s.name(), "gguf:" + lower);
    EXPECT_EQ(QuantScheme::from_json(s.to_json()), s);
    EXPECT_EQ(QuantScheme::from_json(nlohmann::json(s.name())), s);
    EXPECT_EQ(parse_scheme(s.name()), s);
    EXPECT_EQ(ggml_type_of(s), t);
    EXPECT_NO_THROW(s.validate());
    EXPECT_TRUE(uses_v2_wrapper(s));
    EXPECT_FALSE(has_init_scale_search(s));
  }
  const QuantScheme q4k = parse_scheme("GGUF:Q4_K");
  EXPECT_EQ(q4k.ggml_type, GgmlType::Q4_K);
  EXPECT_EQ(q4k.bits, 4);
  EXPECT_EQ(q4k.group_size, 32);
  EXPECT_FALSE(q4k.sym);
  EXPECT_EQ(q4k.to_json()["data_type"], "gguf:q4_k");
  EXPECT_NE(q4k, gguf_scheme(GgmlType::Q5_K));
  EXPECT_NE(q4k, preset_scheme("W4A16"));
  EXPECT_EQ(parse_scheme("gguf:q6_k").sym, true);
  EXPECT_EQ(QuantScheme::from_json(nlohmann::json::parse(R"({"data_type": "gguf:q2_k", "bits": 2})")).ggml_type,
            GgmlType::Q2_K);
  EXPECT_THROW(QuantScheme::from_json(nlohmann::json::parse(R"({"data_type": "gguf:q2_k", "bits": 4})")), Error);
  EXPECT_THROW(QuantScheme::from_json(nlohmann::json::parse(R"({"data_type": "gguf:q4_k", "act_bits": 8})")), Error);
  EXPECT_THROW(parse_scheme("gguf:q7_k"), Error);
  EXPECT_THROW(parse_scheme("gguf:tq2_0"), Error);  // a known type that is no scheme
  // The grid i-quants are schemes: their nominal bits, the sub-block sharing a scale code.
  EXPECT_EQ(parse_scheme("gguf:iq2_xs").ggml_type, GgmlType::IQ2_XS);
  EXPECT_EQ(parse_scheme("gguf:iq2_xs").group_size, 16);
  EXPECT_EQ(parse_scheme("gguf:IQ3_S").bits, 3);
  EXPECT_THROW(parse_data_type("gguf", 4), Error);
  EXPECT_EQ(ggml_type_of(preset_scheme("BF16")), GgmlType::BF16);
  EXPECT_EQ(ggml_type_of(gguf_scheme(GgmlType::F16)), GgmlType::F16);
  EXPECT_THROW(ggml_type_of(preset_scheme("W4A16")), Error);
}

TEST(GgufScheme, FitsAndBitCosts) {
  const QuantScheme q4k = gguf_scheme(GgmlType::Q4_K), q2k = gguf_scheme(GgmlType::Q2_K);
  EXPECT_TRUE(fits(q4k, 7, 512).ok);
  EXPECT_FALSE(fits(q4k, 8, 288).ok);
  EXPECT_NE(fits(q4k, 8, 288).reason.find("256"), std::string::npos);
  EXPECT_TRUE(fits(gguf_scheme(GgmlType::Q4_0), 8, 288).ok);
  // §4.3 (auto-round's costs): Q4_K 4.625, Q2_K 2.75 bits per weight; legacy as int G = 32.
  const int64_t n = 256 * 512;
  EXPECT_EQ(layer_bits(q4k, 256, 512, false), n * 4 + n / 256 * 160);
  EXPECT_DOUBLE_EQ(double(layer_bits(q4k, 256, 512, false)) / double(n), 4.625);
  EXPECT_DOUBLE_EQ(double(layer_bits(q2k, 256, 512, false)) / double(n), 2.75);
  EXPECT_DOUBLE_EQ(double(layer_bits(gguf_scheme(GgmlType::Q6_K), 256, 512, false)) / double(n), 7.25);
  EXPECT_DOUBLE_EQ(double(layer_bits(gguf_scheme(GgmlType::Q4_0), 256, 512, false)) / double(n), 4.625);
  EXPECT_EQ(layer_bits(q4k, 256, 512, true), n * 4);
  // What a GGUF file really takes (ggml type sizes).
  const std::pair<GgmlType, double> file_bpw[] = {{GgmlType::Q2_K, 2.625}, {GgmlType::Q3_K, 3.4375},
                                                  {GgmlType::Q4_K, 4.5},   {GgmlType::Q5_K, 5.5},
                                                  {GgmlType::Q6_K, 6.5625}, {GgmlType::Q4_0, 4.5},
                                                  {GgmlType::Q4_1, 5.0},   {GgmlType::Q8_0, 8.5}};
  for (auto [t, bpw] : file_bpw)
    EXPECT_DOUBLE_EQ(double(layer_file_bits(gguf_scheme(t), 256, 512)) / double(n), bpw) << ggml_type_name(t);
}

TEST(GgufState, BlockStateRoundTripsTheRows) {
  const auto w = weight(12);
  const QuantScheme s = gguf_scheme(GgmlType::Q3_K);
  WeightQuantParams p = make_weight_params(w, s, TuneMode::V2, importance(13));
  {
    at::NoGradGuard ng;
    p.t.v.copy_(tuned_offsets(p.t.v, 14));
  }
  QuantizedLayer l{"model.layers.0.mlp.up_proj", s, encode_weight(w, s, p), {}};
  test::TempDir dir;
  save_block_state(dir / "b.safetensors", {l}, {{"k", 1}});
  auto back = load_block_state(dir / "b.safetensors");
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].scheme, s);
  EXPECT_EQ(bytes_of(back[0].encoded.ggml), bytes_of(l.encoded.ggml));
  EXPECT_TRUE(same_bits(back[0].dequantized(), qdq_weight(w, s, p).w_hat));
}

}  // namespace
}  // namespace sr
