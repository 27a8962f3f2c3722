// Tuning speed of SignRound: seconds and achieved GFLOP/s per iteration on one
// block of a random-weight model, in fp32 and under bf16 amp (common/amp.h), beside the
// fp32 and bf16 GEMM throughput this machine reaches on exactly the GEMMs one iteration
// performs (same shapes, same threads, same process).
//
//   build/bench/tuning_speed [preset] [iters] [threads] [seqlen] [batch]
//   preset: 4m      hidden 256,  intermediate 768,  4 heads / 2 kv, seqlen 512, batch 8
//           llama1b hidden 2048, intermediate 8192, 32 heads / 8 kv, seqlen 512, batch 8
//                   (Llama-3.2-1B's block shape; seqlen 512 keeps the attention graph in RAM)
//   seqlen, batch: override the preset's (the samples cached are 2 batches' worth)
// Amp is measured whether or not bf16_compute_supported says the CPU multiplies bf16 natively
// (quantize's default follows that answer; this shows what it costs either way); its activation
// cache is bf16, as quantize's default with amp.
//
// FLOPs of one iteration (B·T tokens, P_x = out·in of projection x):
//   forward      2·BT·ΣP  + attention 4·B·H·T²·hd
//   backward     2·BT·ΣP (weight grads) + 2·BT·(P_o + P_gate + P_up + P_down) (input grads
//                autograd computes: o_proj's and down_proj's inputs lead back to trainable
//                weights, and so does gate/up's input, the residual stream after o_proj; only
//                q/k/v read the norm of the block input, which needs no gradient)
//                + attention 8·B·H·T²·hd
// The qdq of every weight and the elementwise work are not counted: they are the overhead
// this benchmark exposes.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/amp.h"
#include "common/sysinfo.h"
#include "model/model.h"
#include "tune/unit_quantizer.h"
#include "random_model.h"
#include "testutil.h"

namespace sr {
namespace {

struct Shape { const char* name; int64_t D, F, H, KV, T, B, N; };

double time_gemms(const Shape& s, int reps, at::ScalarType dtype) {
  const int64_t BT = s.B * s.T, hd = s.D / s.H;
  struct G { int64_t out, in; bool input_grad; };
  const G gs[] = {{s.H * hd, s.D, false}, {s.KV * hd, s.D, false}, {s.KV * hd, s.D, false}, {s.D, s.H * hd, true},
                  {s.F, s.D, true}, {s.F, s.D, true}, {s.D, s.F, true}};
  std::vector<at::Tensor> x, w, gy;
  for (const G& g : gs) {
    x.push_back(at::randn({BT, g.in}).to(dtype));
    w.push_back(at::randn({g.out, g.in}).to(dtype));
    gy.push_back(at::randn({BT, g.out}).to(dtype));
  }
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now_seconds();
    for (size_t i = 0; i < 7; ++i) {
      auto y = at::mm(x[i], w[i].t());                 // forward
      auto gw = at::mm(gy[i].t(), x[i]);               // weight gradient
      if (gs[i].input_grad) auto gx = at::mm(gy[i], w[i]);  // input gradient
    }
    best = std::min(best, now_seconds() - t0);
  }
  return best;
}

double iteration_flops(const Shape& s, bool with_attention) {
  const double BT = double(s.B * s.T), hd = double(s.D / s.H);
  const double P = double(s.H * hd * s.D) * 2 + double(s.KV * hd * s.D) * 2 + 3.0 * double(s.F * s.D);
  const double P_input_grad = double(s.D * s.H * hd) + 3.0 * double(s.D * s.F);  // o, gate, up, down
  double f = 2 * BT * P + 2 * BT * P + 2 * BT * P_input_grad;
  if (with_attention) f += 12.0 * double(s.B * s.H) * double(s.T * s.T) * hd;
  return f;
}

int run(int argc, char** argv) {
  const std::string preset = argc > 1 ? argv[1] : "4m";
  const int iters = argc > 2 ? std::atoi(argv[2]) : 10;
  set_threads(argc > 3 ? std::atoi(argv[3]) : 0);
  Shape s = preset == "llama1b" ? Shape{"llama1b", 2048, 8192, 32, 8, 512, 8, 16}
                                : Shape{"4m", 256, 768, 4, 2, 512, 8, 32};
  if (argc > 4) s.T = std::atoi(argv[4]);
  if (argc > 5) s.B = std::atoi(argv[5]), s.N = 2 * s.B;
  test::TempDir dir;
  test::RandomModelSpec spec;
  spec.hidden = s.D; spec.intermediate = s.F; spec.heads = s.H; spec.kv_heads = s.KV;
  spec.layers = 1; spec.vocab = 256; spec.max_position = s.T;
  auto model = Model::open(test::write_random_hf_model(dir.path(), spec));
  LayerPlan plan = make_layer_plan(*model, {parse_scheme("W4A16"), "", false});
  UnitInput in;
  in.blocks = {0};
  in.fp = {model->load_block(0)};
  in.x_in = at::randn({s.N, s.T, s.D});
  in.mask = at::ones({s.N, s.T}, at::kBool);
  const RopeTables& rope = model->rope(s.T);
  {
    at::NoGradGuard ng;
    in.y_ref = unit_forward(model->config(), in.fp, {nullptr}, in.x_in.all(), rope);
  }
  const bool amp_ok = bf16_compute_supported(at::Device(at::kCPU));
  std::printf("shape %s: D %lld F %lld heads %lld/%lld, %lld x %lld tokens per step, %d threads, bf16 native: %s\n",
              s.name, (long long)s.D, (long long)s.F, (long long)s.H, (long long)s.KV, (long long)s.B, (long long)s.T,
              threads(), amp_ok ? "yes (quantize's default: amp)" : "no (quantize's default: fp32)");
  const double flops = iteration_flops(s, true), gemm_flops = iteration_flops(s, false);
  // A GEMM rate is measured right before and right after the tuning it is compared with, so that
  // on a shared machine both see about the same load; the spread of the two is printed.
  auto gemm_rate = [&](at::ScalarType t) { return gemm_flops / time_gemms(s, 3, t) / 1e9; };
  // Per-iteration time = (time at 1 + iters iterations - time at 1 iteration) / iters: the
  // once-per-block work (initial-scale search, final encode) cancels out.
  double rate_of[2] = {0, 0}, gemm_of[2] = {0, 0};
  for (bool amp : {false, true}) {
    TuneOptions opt;
    opt.batch_size = s.B;
    opt.amp = amp;
    UnitInput run_in = in;
    if (amp) run_in.x_in = in.x_in.all().to(at::kBFloat16);  // quantize's cache dtype with amp
    auto timed = [&](int64_t n) {
      opt.iters = n;
      const double t0 = now_seconds();
      quantize_unit(model->config(), plan, run_in, rope, opt);
      return now_seconds() - t0;
    };
    const at::ScalarType dtype = amp ? at::kBFloat16 : at::kFloat;
    const double g0 = gemm_rate(dtype);
    timed(1);  // warm-up
    const double t_one = timed(1);
    const double per_iter = (timed(1 + iters) - t_one) / iters;
    const double g1 = gemm_rate(dtype), gemm = (g0 + g1) / 2, rate = flops / per_iter / 1e9;
    rate_of[amp] = rate, gemm_of[amp] = gemm;
    const char* name = amp ? "bf16" : "fp32";
    std::printf("%s GEMMs       %.1f GFLOP   %.1f GFLOP/s (before %.1f, after %.1f)\n", name, gemm_flops / 1e9, gemm,
                g0, g1);
    std::printf("%s tuning      %.3f s/iter  %.3f iter/s  %.1f GFLOP  %.1f GFLOP/s = %.0f %% of the %s GEMM rate\n",
                name, per_iter, 1.0 / per_iter, flops / 1e9, rate, 100.0 * rate / gemm, name);
  }
  std::printf("bf16 / fp32      GEMMs x%.2f   tuning x%.2f   (bf16 tuning = %.0f %% of the fp32 GEMM rate)\n",
              gemm_of[1] / gemm_of[0], rate_of[1] / rate_of[0], 100.0 * rate_of[1] / gemm_of[0]);
  std::printf("peak RSS         %.0f MB\n", peak_rss_bytes() / 1e6);
  return 0;
}

}  // namespace
}  // namespace sr

int main(int argc, char** argv) {
  sr::configure_process(argv);
  return sr::run(argc, argv);
}
