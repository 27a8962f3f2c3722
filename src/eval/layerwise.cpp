#include "eval/layerwise.h"

#include <algorithm>

#include "common/error.h"
#include "common/progress.h"

namespace sr {
namespace {

// Sequences per block-forward call: keep attention scores and MLP activations
// of one call around 256 MB.
int64_t rows_per_call(const ModelConfig& c, int64_t T) {
  const int64_t per_row = 4 * (c.n_heads * T * T + T * (3 * c.intermediate + 4 * c.hidden));
  return std::max<int64_t>(1, (256LL << 20) / std::max<int64_t>(per_row, 1));
}

}  // namespace

int64_t run_layerwise(const Model& model, const at::Tensor& tokens, const LayerwiseOptions& opt,
                      const LogitsSink& sink) {
  at::NoGradGuard no_grad;
  const ModelConfig& c = model.config();
  SR_CHECK(tokens.dim() == 2, "[eval] tokens must be [N, T], got ", tokens.sizes());
  const int64_t N = tokens.size(0), T = tokens.size(1);
  const int64_t first = opt.first_position;
  const int64_t count = opt.position_count < 0 ? T - first : opt.position_count;
  SR_CHECK(first >= 0 && first + count <= T, "[eval] scored positions [", first, ", ", first + count,
           ") outside sequences of ", T);
  const int64_t row_bytes = T * c.hidden * 4 + count * c.vocab * 4;
  const int64_t wave = std::clamp<int64_t>(opt.max_wave_bytes / row_bytes, 1, N);
  const int64_t call = rows_per_call(c, T);
  const int64_t n_waves = (N + wave - 1) / wave;
  auto positions = at::arange(T, at::kLong);
  const RopeTables& rope = model.rope(T);
  Progress progress("eval", int(n_waves * c.n_layers), opt.progress);
  for (int64_t w0 = 0; w0 < N; w0 += wave) {
    const int64_t n = std::min(wave, N - w0);
    at::Tensor h = model.embed(tokens.narrow(0, w0, n));  // [n, T, D]
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const BlockWeights w = model.load_block(l);
      for (int64_t r = 0; r < n; r += call) {
        const int64_t b = std::min(call, n - r);
        h.narrow(0, r, b).copy_(model.run_block(l, w, h.narrow(0, r, b), positions, rope));
      }
      progress.update(int((w0 / wave) * c.n_layers + l + 1));
    }
    for (int64_t r = 0; r < n; r += call) {
      const int64_t b = std::min(call, n - r);
      sink(w0 + r, model.logits(h.narrow(0, r, b).narrow(1, first, count)));
    }
  }
  return n_waves;
}

}  // namespace sr
