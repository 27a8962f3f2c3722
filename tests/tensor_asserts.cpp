#include "tensor_asserts.h"

#include <chrono>
#include <cmath>
#include <random>
#include <vector>

#include "common/half.h"

namespace sr::test {

::testing::AssertionResult same_bits(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes())
    return ::testing::AssertionFailure() << "shapes " << a.sizes() << " vs " << b.sizes();
  auto ai = a.detach().to(at::kFloat).contiguous().view(at::kInt).reshape(-1);
  auto bi = b.detach().to(at::kFloat).contiguous().view(at::kInt).reshape(-1);
  auto diff = (ai != bi).nonzero();
  if (diff.numel() == 0) return ::testing::AssertionSuccess();
  const int64_t i = diff[0][0].item<int64_t>();
  return ::testing::AssertionFailure()
         << diff.numel() << " of " << ai.numel() << " differ; first at " << i << ": "
         << f32_from_bits(uint32_t(ai[i].item<int>())) << " vs " << f32_from_bits(uint32_t(bi[i].item<int>()));
}

CorrelatedLayer correlated_layer(int64_t out, int64_t in, int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  at::Tensor X = at::empty({n, in}), W = at::empty({out, in});
  std::vector<float> col(static_cast<size_t>(in));
  for (float& c : col) c = std::exp(g(rng));  // heavy input channels, as in LLM activations
  at::Tensor A = at::empty({n, 16}), B = at::empty({16, in});
  for (int64_t i = 0; i < n * 16; ++i) A.data_ptr<float>()[i] = g(rng);
  for (int64_t i = 0; i < 16 * in; ++i) B.data_ptr<float>()[i] = g(rng) * 0.25f;
  for (int64_t i = 0; i < n * in; ++i) X.data_ptr<float>()[i] = 0.3f * g(rng);
  X = ((at::matmul(A, B) + X) * at::from_blob(col.data(), {in}, at::kFloat)).contiguous();
  for (int64_t i = 0; i < out * in; ++i) W.data_ptr<float>()[i] = 0.02f * g(rng);
  return {X, W, (X * X).mean(0).contiguous()};
}

SignSgdRun sign_sgd_on_layer(const CorrelatedLayer& layer, int64_t iters,
                             const std::function<void(int64_t, const float*, float*, float*)>& qdq_row) {
  const at::Tensor &X = layer.X, &W = layer.W;
  const int64_t O = W.size(0), I = W.size(1);
  at::Tensor v = at::zeros({O, I}), w_hat = at::empty({O, I}), dv = at::empty({O, I});
  SignSgdRun run{v.clone(), 1e300, 0};
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t it = 0; it < iters; ++it) {
    for (int64_t r = 0; r < O; ++r)
      qdq_row(r, v.data_ptr<float>() + r * I, w_hat.data_ptr<float>() + r * I, dv.data_ptr<float>() + r * I);
    const at::Tensor R = at::matmul(X, (w_hat - W).t());  // [N, O]
    const double l = R.pow(2).mean().item<double>();
    if (l < run.best_loss) run.best_loss = l, run.best_v = v.clone();
    const at::Tensor grad = at::matmul(R.t(), X) * dv;  // dL/dv up to a positive factor
    const double lr = (1.0 / double(iters)) * (1.0 - double(it) / double(iters));
    v = (v - lr * grad.sign()).clamp(-0.5, 0.5);
  }
  run.seconds_per_iter = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / double(iters);
  return run;
}

}  // namespace sr::test
