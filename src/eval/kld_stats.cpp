#include "eval/kld_stats.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/error.h"

namespace sr {

std::pair<double, double> llamacpp_mean_and_stderr(double sum, double sum2, int64_t n) {
  if (n < 1) return {0.0, 0.0};
  const double f = sum / double(n);
  const double v = sum2 / double(n) - f * f;
  return {f, v > 0 && n > 10 ? std::sqrt(v / double(n - 1)) : 0.0};
}

double llamacpp_percentile(const std::vector<float>& sorted, float fraction) {
  SR_CHECK(!sorted.empty(), "[kld] percentile of no values");
  if (fraction <= 0) return sorted.front();
  if (fraction >= 1) return sorted.back();
  // float arithmetic throughout, as llama.cpp computes it
  float p = fraction * float(sorted.size() - 1);
  const size_t ip = size_t(p);
  p -= float(ip);
  return (1 - p) * sorted[ip] + p * sorted[std::min(ip + 1, sorted.size() - 1)];
}

double llamacpp_median(const std::vector<float>& sorted) {
  SR_CHECK(!sorted.empty(), "[kld] median of no values");
  const size_t n = sorted.size();
  return n % 2 == 0 ? 0.5f * (sorted[n / 2] + sorted[n / 2 - 1]) : sorted[n / 2];
}

void KldAccumulator::add(double kld, float nll, float nll_base, bool same_top) {
  sum_nll_ += nll;
  sum_nll2_ += nll * nll;
  sum_nll_base_ += nll_base;
  sum_nll_base2_ += nll_base * nll_base;
  sum_nll_nll_base_ += nll * nll_base;
  sum_kld_ += kld;
  sum_kld2_ += kld * kld;
  const float dp = std::exp(-nll) - std::exp(-nll_base);
  const double dp2 = dp * dp;
  sum_dp_ += dp;
  sum_dp2_ += dp2;
  sum_dp4_ += dp2 * dp2;
  same_top_ += same_top ? 1 : 0;
  ++count_;
  kld_values_.push_back(float(kld));
  dp_values_.push_back(dp);
}

namespace {

// llama.cpp's covariance of two means (0 below 10 values).
double covariance(double suma, double sumb, double sumab, int64_t n) {
  if (n < 10) return 0.0;
  return (sumab / double(n) - (suma / double(n)) * (sumb / double(n))) / double(n - 1);
}

double sqrt_or_zero(double v) { return v > 0 ? std::sqrt(v) : 0.0; }

std::vector<Quantile> quantiles(std::vector<float> v, const std::vector<float>& fractions) {
  std::sort(v.begin(), v.end());
  std::vector<Quantile> out{{"max", v.back()}};
  for (float f : fractions) {
    char name[16];
    std::snprintf(name, sizeof name, "%.1f%%", 100.0 * f);
    out.push_back({f == 0.5f ? "median" : name, f == 0.5f ? llamacpp_median(v) : llamacpp_percentile(v, f)});
  }
  out.push_back({"min", v.front()});
  return out;
}

}  // namespace

KldStats KldAccumulator::finish() const {
  SR_CHECK(count_ >= 1, "[kld] no scored positions");
  KldStats s;
  s.count = count_;
  const auto lp = llamacpp_mean_and_stderr(sum_nll_, sum_nll2_, count_);
  const auto lb = llamacpp_mean_and_stderr(sum_nll_base_, sum_nll_base2_, count_);
  const double cov = covariance(sum_nll_, sum_nll_base_, sum_nll_nll_base_, count_);
  s.ppl = std::exp(lp.first);
  s.ppl_stderr = s.ppl * lp.second;
  s.ppl_base = std::exp(lb.first);
  s.ppl_base_stderr = s.ppl_base * lb.second;
  s.ppl_correlation = lp.second > 0 && lb.second > 0 ? cov / (lp.second * lb.second) : 0.0;
  s.ln_ppl_ratio = lp.first - lb.first;
  s.ln_ppl_ratio_stderr = sqrt_or_zero(lp.second * lp.second + lb.second * lb.second - 2.0 * cov);
  s.ppl_ratio = std::exp(s.ln_ppl_ratio);
  s.ppl_ratio_stderr = s.ppl_ratio * s.ln_ppl_ratio_stderr;
  s.ppl_diff = s.ppl - s.ppl_base;
  s.ppl_diff_stderr = sqrt_or_zero(s.ppl_stderr * s.ppl_stderr + s.ppl_base_stderr * s.ppl_base_stderr -
                                   2.0 * s.ppl * s.ppl_base * cov);
  const auto k = llamacpp_mean_and_stderr(sum_kld_, sum_kld2_, count_);
  s.kld = k.first;
  s.kld_stderr = k.second;
  s.kld_quantiles = quantiles(kld_values_, {0.999f, 0.99f, 0.95f, 0.90f, 0.5f, 0.10f, 0.05f, 0.01f, 0.001f});
  const auto d = llamacpp_mean_and_stderr(sum_dp_, sum_dp2_, count_);
  s.dp = d.first;
  s.dp_stderr = d.second;
  const auto mse = llamacpp_mean_and_stderr(sum_dp2_, sum_dp4_, count_);
  s.dp_rms = std::sqrt(mse.first);
  s.dp_rms_stderr = s.dp_rms > 0 ? 0.5 / s.dp_rms * mse.second : 0.0;
  s.dp_quantiles = quantiles(dp_values_, {0.999f, 0.99f, 0.95f, 0.90f, 0.75f, 0.5f, 0.25f, 0.10f, 0.05f, 0.01f,
                                          0.001f});
  s.same_top = double(same_top_) / double(count_);
  s.same_top_stderr = count_ > 1 ? std::sqrt(s.same_top * (1.0 - s.same_top) / double(count_ - 1)) : 0.0;
  return s;
}

}  // namespace sr
