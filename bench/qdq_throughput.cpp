// qdq throughput per format on a 4096x4096 fp32 weight, forward and backward (gradient to v and
// beta, as in one SignRound step), for the composed reference and the fused CPU kernels, next
// to a plain elementwise libtorch op of the same size (y = x*2 + 1) as the memory-bandwidth
// yardstick. Target: fused forward >= 25% of the yardstick's elements/s.
//
// Usage: qdq_throughput [rows cols [threads [filter]]]   (defaults 4096 4096, all cores, all
//        formats; filter keeps the formats whose name contains it)
#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "common/sysinfo.h"
#include "common/torch.h"
#include "quant/qdq.h"

namespace {

using sr::QdqResult;
using sr::QuantScheme;
using sr::Tunables;

// Median wall time of `reps` runs of fn (after one warm-up run).
double median_seconds(const std::function<void()>& fn, int reps) {
  fn();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const double t0 = sr::now_seconds();
    fn();
    t.push_back(sr::now_seconds() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

using QdqFn = std::function<QdqResult(const at::Tensor&, const sr::WeightQuantParams&)>;

struct Case {
  std::string name;
  QuantScheme scheme;
  sr::TuneMode mode;
  QdqFn reference;
};

std::vector<Case> cases() {
  using sr::TuneMode;
  auto int_ref = [](const QuantScheme& s) {
    return [s](const at::Tensor& w, const sr::WeightQuantParams& p) {
      return sr::int_quant::qdq_reference(w, sr::int_format(s), p.t);
    };
  };
  auto mx_ref = [](const QuantScheme& s) {
    return [s](const at::Tensor& w, const sr::WeightQuantParams& p) {
      return sr::mxfp::qdq_reference(w, sr::mx_format(s), p.t);
    };
  };
  const auto w4 = sr::preset_scheme("W4A16"), w2 = sr::preset_scheme("W2A16");
  const auto asym = sr::parse_scheme("bits=4,sym=false,group_size=128");
  const auto mx4 = sr::preset_scheme("MXFP4"), mx8 = sr::preset_scheme("MXFP8");
  const auto nv = sr::preset_scheme("NVFP4"), fp8 = sr::preset_scheme("FP8_STATIC");
  return {
      {"int4 sym g128 (v1)", w4, TuneMode::V1, int_ref(w4)},
      {"int2 sym g128 (v2)", w2, TuneMode::V2, int_ref(w2)},
      {"int4 asym g128 (v1)", asym, TuneMode::V1, int_ref(asym)},
      {"mxfp4 (v2)", mx4, TuneMode::V2, mx_ref(mx4)},
      {"mxfp8 (v2)", mx8, TuneMode::V2, mx_ref(mx8)},
      {"nvfp4 (v2)", nv, TuneMode::V2,
       [nv](const at::Tensor& w, const sr::WeightQuantParams& p) {
         return sr::nvfp::qdq_reference(w, sr::nv_format(nv), p.t, p.global_scale);
       }},
      {"fp8 per-row (v1)", fp8, TuneMode::V1,
       [fp8](const at::Tensor& w, const sr::WeightQuantParams& p) {
         return sr::fp8::qdq_reference(w, sr::fp8_format(fp8), p.t);
       }},
  };
}

struct Timing {
  double fwd = 0, bwd = 0;  // seconds
};

// Forward (graph building included, as in tuning) and backward (to v and beta only).
Timing time_case(const QdqFn& fn, const at::Tensor& w, sr::WeightQuantParams& p,
                 const at::Tensor& grad, int reps) {
  Timing t;
  t.fwd = median_seconds([&] { fn(w, p); }, reps);
  std::vector<double> bw;
  for (int i = 0; i <= reps; ++i) {
    auto r = fn(w, p);
    p.t.v.mutable_grad() = at::Tensor();
    p.t.beta.mutable_grad() = at::Tensor();
    if (p.t.alpha.defined()) p.t.alpha.mutable_grad() = at::Tensor();
    const double t0 = sr::now_seconds();
    r.w_hat.backward(grad);
    if (i > 0) bw.push_back(sr::now_seconds() - t0);  // first run is the warm-up
  }
  std::sort(bw.begin(), bw.end());
  t.bwd = bw[bw.size() / 2];
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  sr::configure_process(argv);
  const int64_t rows = argc >= 3 ? std::atoll(argv[1]) : 4096;
  const int64_t cols = argc >= 3 ? std::atoll(argv[2]) : 4096;
  sr::set_threads(argc >= 4 ? std::atoi(argv[3]) : 0);
  const int reps = 5;
  const double n = double(rows) * double(cols);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  auto w = at::randn({rows, cols}, gen) * 0.02;
  auto grad = at::randn({rows, cols}, gen);

  const double yard = median_seconds([&] { auto y = w * 2 + 1; }, reps);
  std::fprintf(stderr, "qdq_throughput: %lld x %lld fp32, %d threads, median of %d\n",
               (long long)rows, (long long)cols, sr::threads(), reps);
  std::printf("yardstick y = x*2+1: %.1f Melem/s (%.2f ms)\n\n", n / yard / 1e6, yard * 1e3);
  std::printf("%-22s %-9s %12s %9s %12s %9s\n", "format", "path", "fwd Melem/s", "fwd/yard",
              "bwd Melem/s", "bwd/yard");
  const std::string filter = argc >= 5 ? argv[4] : "";
  for (const auto& c : cases()) {
    if (c.name.find(filter) == std::string::npos) continue;
    auto p = sr::make_weight_params(w, c.scheme, c.mode);
    const QuantScheme s = c.scheme;
    QdqFn fused = [s](const at::Tensor& x, const sr::WeightQuantParams& q) { return sr::qdq_weight(x, s, q); };
    for (int path = 0; path < 2; ++path) {
      const Timing t = time_case(path == 0 ? c.reference : fused, w, p, grad, reps);
      std::printf("%-22s %-9s %12.1f %8.1f%% %12.1f %8.1f%%\n", c.name.c_str(),
                  path == 0 ? "composed" : "fused", n / t.fwd / 1e6, 100 * yard / t.fwd,
                  n / t.bwd / 1e6, 100 * yard / t.bwd);
      std::fflush(stdout);
    }
  }
  return 0;
}
