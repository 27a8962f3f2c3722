// Scaling of a SignRound run with model depth: one process per model size, so the
// peak resident set (VmHWM) is that run's alone. Random-weight models of the same
// width with L blocks; prints one JSON line.
//
//   build/bench/scaling <layers> [hidden=512] [iters=20] [nsamples=32] [seqlen=256]
//   bench/scaling.sh    runs 2, 4, 8, 16 blocks and prints a table
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "common/sysinfo.h"
#include "model/model.h"
#include "random_model.h"
#include "testutil.h"
#include "tune/pipeline.h"

int main(int argc, char** argv) {
  sr::configure_process(argv);
  using namespace sr;
  const int64_t layers = argc > 1 ? std::atoll(argv[1]) : 4;
  const int64_t hidden = argc > 2 ? std::atoll(argv[2]) : 512;
  const int64_t iters = argc > 3 ? std::atoll(argv[3]) : 20;
  const int64_t nsamples = argc > 4 ? std::atoll(argv[4]) : 32;
  const int64_t seqlen = argc > 5 ? std::atoll(argv[5]) : 256;
  set_threads(0);
  test::TempDir dir;
  test::RandomModelSpec s;
  s.hidden = hidden;
  s.intermediate = 3 * hidden;
  s.heads = hidden / 64;
  s.kv_heads = std::max<int64_t>(1, hidden / 128);
  s.layers = layers;
  s.vocab = 512;
  s.max_position = seqlen;
  auto model = Model::open(test::write_random_hf_model(dir / "model", s));
  const int64_t model_bytes = int64_t(std::filesystem::file_size(dir / "model/model.safetensors"));
  LayerPlan plan = make_layer_plan(*model, {parse_scheme("W4A16"), "", false});
  QuantizeOptions opt;
  opt.tune.iters = iters;
  opt.tune.batch_size = 8;
  opt.progress = false;
  at::manual_seed(0);
  opt.calib_tokens = at::randint(0, s.vocab, {nsamples, seqlen}, at::kLong);
  const int64_t rss0 = current_rss_bytes();
  const double t0 = now_seconds();
  run_quantization(*model, plan, opt, dir / "state", {{"bench", "scaling"}});
  const double seconds = now_seconds() - t0;
  std::printf("{\"layers\": %lld, \"hidden\": %lld, \"model_bytes\": %lld, \"seconds\": %.2f, "
              "\"peak_rss_bytes\": %lld, \"rss_before_bytes\": %lld, \"cache_bytes\": %lld}\n",
              (long long)layers, (long long)hidden, (long long)model_bytes, seconds, (long long)peak_rss_bytes(),
              (long long)rss0, (long long)cache_bytes(nsamples, seqlen, hidden, false));
  return 0;
}
