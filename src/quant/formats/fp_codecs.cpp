// Tensor versions of the minifloat codecs. Every function is a short chain of elementwise
// ATen ops (bit views, shifts, where), so it runs on any device and agrees bit for bit with
// the scalar inline codecs in fp_codecs.h (tests/quant/fp_codecs_test.cpp checks all codes).
#include "quant/formats/fp_codecs.h"

#include "common/error.h"

namespace sr::codec {
namespace {

constexpr double kTwoTo64 = 18446744073709551616.0;  // 2^64: lifts fp32 subnormals to normals
constexpr double kMinNormal = 1.1754943508222875e-38;  // 2^-126

at::Tensor as_f32(const at::Tensor& x) { return x.to(at::kFloat).contiguous(); }

// fp32 with the given biased exponent field (integer-valued fp32 in [1, 254]) and zero mantissa.
at::Tensor float_from_biased_exponent(const at::Tensor& biased) {
  return at::bitwise_left_shift(biased.to(at::kInt), 23).view(at::kFloat);
}

}  // namespace

at::Tensor floor_log2(const at::Tensor& x) {
  auto a = as_f32(x).abs();
  auto sub = a < kMinNormal;
  auto lifted = at::where(sub, a * kTwoTo64, a).contiguous();  // exact scaling by 2^64
  auto e = at::bitwise_right_shift(lifted.view(at::kInt), 23) - 127;
  return at::where(sub, e - 64, e).to(at::kFloat);
}

at::Tensor ceil_log2(const at::Tensor& x) {
  auto f = floor_log2(x);
  return at::where(pow2(f) == as_f32(x).abs(), f, f + 1);
}

at::Tensor pow2(const at::Tensor& e) {
  auto ef = as_f32(e);
  auto hi = ef.clamp(-126, 127);
  auto rest = (ef - hi).clamp(-23, 0);  // only non-zero below -126; 2^rest is still normal
  return float_from_biased_exponent(hi + 127) * float_from_biased_exponent(rest + 127);
}

at::Tensor e2m1_round(const at::Tensor& x) {
  auto xf = as_f32(x);
  auto a = xf.abs();
  auto r = at::where(a < 2.0, at::round(a * 2.0) * 0.5,
                     at::where(a < 4.0, at::round(a), at::round(a * 0.5) * 2.0));
  r = at::where(a < kE2M1Max, r, at::full_like(r, kE2M1Max));  // saturate (NaN too)
  return at::copysign(r, xf);
}

at::Tensor e2m1_encode(const at::Tensor& x) {
  auto xf = as_f32(x);
  SR_CHECK(!at::isnan(xf).any().item<bool>(),
           "[e2m1_encode] input contains NaN — E2M1 has no NaN code");
  auto r = e2m1_round(xf).abs();
  auto idx = at::where(r < 2.0, r * 2.0, at::where(r < 4.0, r + 2.0, r * 0.5 + 4.0));
  return (idx + at::signbit(xf).to(at::kFloat) * 8.0).to(at::kByte);
}

at::Tensor e2m1_decode(const at::Tensor& codes) {
  SR_CHECK(codes.scalar_type() == at::kByte, "[e2m1_decode] expected uint8 codes, got ",
           codes.scalar_type());
  SR_CHECK(codes.numel() == 0 || codes.max().item<int>() < 16,
           "[e2m1_decode] codes must be < 16, found ", codes.max().item<int>());
  auto table = at::tensor({0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f, -0.0f, -0.5f, -1.0f,
                           -1.5f, -2.0f, -3.0f, -4.0f, -6.0f})
                   .to(codes.device());
  return table.index_select(0, codes.reshape(-1).to(at::kLong)).view(codes.sizes());
}

at::Tensor e4m3_round(const at::Tensor& x) {
  auto xf = as_f32(x);
  auto a = xf.abs().clamp_max(kE4M3Max);  // saturate; NaN propagates
  auto e = at::where(a < pow2(kE4M3MinExp), at::full_like(a, float(kE4M3MinExp)), floor_log2(a));
  auto step = pow2(e - 3);
  return at::copysign(at::round(a / step) * step, xf);
}

at::Tensor e4m3_encode(const at::Tensor& x) {
  auto xf = as_f32(x);
  auto r = e4m3_round(xf).abs();
  auto sub = r < pow2(kE4M3MinExp);
  auto e = at::where(sub, at::full_like(r, float(kE4M3MinExp)), floor_log2(r));
  auto normal = (e + 7.0) * 8.0 + (r / pow2(e - 3) - 8.0);
  auto code = at::where(sub, r * 512.0, normal);
  code = at::where(at::isnan(xf), at::full_like(code, float(kE4M3NaN)), code);
  return (code + at::signbit(xf).to(at::kFloat) * 128.0).to(at::kByte);
}

at::Tensor e4m3_decode(const at::Tensor& bytes) {
  SR_CHECK(bytes.scalar_type() == at::kByte, "[e4m3_decode] expected uint8 bytes, got ",
           bytes.scalar_type());
  auto b = bytes.to(at::kInt);
  auto e = at::bitwise_and(at::bitwise_right_shift(b, 3), 15);
  auto m = at::bitwise_and(b, 7).to(at::kFloat);
  auto sub = m * pow2(-9);
  auto normal = (m + 8.0) * pow2(e.to(at::kFloat) - 10.0);
  auto v = at::where(e == 0, sub, normal);
  v = at::where(at::bitwise_and(b, 0x7f) == kE4M3NaN, at::full_like(v, NAN), v);
  return at::where(at::bitwise_and(b, 0x80) != 0, -v, v);
}

at::Tensor e8m0_encode(const at::Tensor& exponents) {
  auto e = as_f32(exponents);
  if (e.numel() > 0) {
    SR_CHECK(at::equal(e, at::round(e)), "[e8m0_encode] exponents must be integers");
    SR_CHECK(e.min().item<float>() >= kE8M0MinExp && e.max().item<float>() <= kE8M0MaxExp,
             "[e8m0_encode] exponent out of range [-127, 127]: found [", e.min().item<float>(), ", ",
             e.max().item<float>(), "]");
  }
  return (e + float(kE8M0Bias)).to(at::kByte);
}

at::Tensor e8m0_decode(const at::Tensor& bytes) {
  SR_CHECK(bytes.scalar_type() == at::kByte, "[e8m0_decode] expected uint8 bytes, got ",
           bytes.scalar_type());
  auto b = bytes.to(at::kFloat);
  auto v = pow2(b - float(kE8M0Bias));
  return at::where(b == float(kE8M0NaN), at::full_like(v, NAN), v);
}

}  // namespace sr::codec
