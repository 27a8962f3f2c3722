// KL-divergence statistics as llama-perplexity --kl-divergence reports them (llama.cpp's
// tools/perplexity/perplexity.cpp), so that its figures and ours read the same way.
//
// Per scored position the caller supplies the KL divergence KL(p_base || p_model), the NLL of
// the correct token under both models and whether both rank the same token first. From those:
//   Δp            p_model(correct) - p_base(correct), in float as llama.cpp has it
//   mean ± stderr llama.cpp's mean_and_uncertainty: f = Σx/n, v = Σx²/n - f²,
//                 stderr = sqrt(v / (n-1)) when v > 0 and n > 10, else 0
//   RMS Δp        sqrt(mean Δp²) ± 0.5/RMS * stderr(Δp²)  (stderr from Σ Δp⁴)
//   same top p    n_same/n ± sqrt(p (1-p) / (n-1))
//   percentile    of the sorted values in float: x = fraction * (n-1), linear interpolation
//                 between values[floor x] and the next; fraction <= 0 / >= 1 give min / max
//   median        the middle value, or the float mean of the two middle ones when n is even
//   PPL(Q), PPL(base), their log ratio and difference with llama.cpp's covariance terms.
// llama.cpp prints the distribution (percentiles) only from 100 positions on; we compute it
// for any n >= 1.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sr {

// One named figure of a sorted distribution: "max", "99.9%", …, "median", …, "min".
struct Quantile {
  std::string name;
  double value = 0;
};

struct KldStats {
  int64_t count = 0;
  double ppl = 0, ppl_stderr = 0;            // exp(mean NLL) of the evaluated model
  double ppl_base = 0, ppl_base_stderr = 0;  // of the base
  double ppl_correlation = 0;                // Cor(ln PPL(Q), ln PPL(base))
  double ln_ppl_ratio = 0, ln_ppl_ratio_stderr = 0;
  double ppl_ratio = 0, ppl_ratio_stderr = 0;
  double ppl_diff = 0, ppl_diff_stderr = 0;
  double kld = 0, kld_stderr = 0;
  std::vector<Quantile> kld_quantiles;  // max, 99.9, 99, 95, 90, median, 10, 5, 1, 0.1 %, min
  double dp = 0, dp_stderr = 0;         // mean Δp (a fraction, not %)
  double dp_rms = 0, dp_rms_stderr = 0;
  std::vector<Quantile> dp_quantiles;   // max, 99.9, 99, 95, 90, 75, median, 25, 10, 5, 1, 0.1 %, min
  double same_top = 0, same_top_stderr = 0;
};

// llama.cpp's mean_and_uncertainty (see above): {mean, standard error}.
std::pair<double, double> llamacpp_mean_and_stderr(double sum, double sum2, int64_t n);
// llama.cpp's percentile of ascending `sorted` (non-empty).
double llamacpp_percentile(const std::vector<float>& sorted, float fraction);
// llama.cpp's median of ascending `sorted` (non-empty).
double llamacpp_median(const std::vector<float>& sorted);

// Running sums and per-position values, in llama.cpp's arithmetic (double sums of float terms).
class KldAccumulator {
 public:
  // nll, nll_base: -log p(correct token) under the evaluated model and the base.
  void add(double kld, float nll, float nll_base, bool same_top);
  int64_t count() const { return count_; }
  // REQUIRES count() >= 1.
  KldStats finish() const;

 private:
  double sum_nll_ = 0, sum_nll2_ = 0, sum_nll_base_ = 0, sum_nll_base2_ = 0, sum_nll_nll_base_ = 0;
  double sum_kld_ = 0, sum_kld2_ = 0, sum_dp_ = 0, sum_dp2_ = 0, sum_dp4_ = 0;
  int64_t same_top_ = 0, count_ = 0;
  std::vector<float> kld_values_, dp_values_;
};

}  // namespace sr
