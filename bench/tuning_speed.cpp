// Tuning speed of SignRound: seconds and achieved GFLOP/s per iteration on one
// block of a random-weight model, beside the fp32 GEMM throughput this machine
// reaches on exactly the GEMMs one iteration performs (same shapes, same threads).
//
//   build/bench/tuning_speed [preset] [iters] [threads]
//   preset: 4m      hidden 256,  intermediate 768,  4 heads / 2 kv, seqlen 512, batch 8
//           llama1b hidden 2048, intermediate 8192, 32 heads / 8 kv, seqlen 512, batch 8
//                   (Llama-3.2-1B's block shape; seqlen 512 keeps the attention graph in RAM)
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

#include "common/sysinfo.h"
#include "model/model.h"
#include "tune/unit_quantizer.h"
#include "random_model.h"
#include "testutil.h"

namespace sr {
namespace {

struct Shape { const char* name; int64_t D, F, H, KV, T, B, N; };

double time_gemms(const Shape& s, int reps) {
  const int64_t BT = s.B * s.T, hd = s.D / s.H;
  struct G { int64_t out, in; bool input_grad; };
  const G gs[] = {{s.H * hd, s.D, false}, {s.KV * hd, s.D, false}, {s.KV * hd, s.D, false}, {s.D, s.H * hd, true},
                  {s.F, s.D, true}, {s.F, s.D, true}, {s.D, s.F, true}};
  std::vector<at::Tensor> x, w, gy;
  for (const G& g : gs) {
    x.push_back(at::randn({BT, g.in}));
    w.push_back(at::randn({g.out, g.in}));
    gy.push_back(at::randn({BT, g.out}));
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
  // Per-iteration time = (time at 1 + iters iterations - time at 1 iteration) / iters: the
  // once-per-block work (initial-scale search, final encode) cancels out.
  TuneOptions opt;
  opt.batch_size = s.B;
  auto timed = [&](int64_t n) {
    opt.iters = n;
    const double t0 = now_seconds();
    quantize_unit(model->config(), plan, in, rope, opt);
    return now_seconds() - t0;
  };
  timed(1);  // warm-up
  const double t_one = timed(1);
  const double per_iter = (timed(1 + iters) - t_one) / iters;
  const double gemm = time_gemms(s, 3);
  const double flops = iteration_flops(s, true), gemm_flops = iteration_flops(s, false);
  std::printf("shape %s: D %lld F %lld heads %lld/%lld, %lld x %lld tokens per step, %d threads\n", s.name,
              (long long)s.D, (long long)s.F, (long long)s.H, (long long)s.KV, (long long)s.B, (long long)s.T, threads());
  std::printf("iteration        %.3f s   %.1f GFLOP   %.1f GFLOP/s achieved\n", per_iter, flops / 1e9, flops / per_iter / 1e9);
  std::printf("GEMMs alone      %.3f s   %.1f GFLOP   %.1f GFLOP/s (fp32 GEMM on the same shapes)\n", gemm,
              gemm_flops / 1e9, gemm_flops / gemm / 1e9);
  std::printf("ratio            %.0f %% of the GEMM throughput\n", 100.0 * (flops / per_iter) / (gemm_flops / gemm));
  std::printf("peak RSS         %.0f MB\n", peak_rss_bytes() / 1e6);
  return 0;
}

}  // namespace
}  // namespace sr

int main(int argc, char** argv) {
  sr::configure_process(argv);
  return sr::run(argc, argv);
}
