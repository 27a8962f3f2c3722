#include "calib_effect.h"

#include <algorithm>
#include <array>
#include <vector>

#include "model/llama.h"
#include "quant/qdq.h"

namespace sr::test {

CalibEffect calib_effect(const Model& m, const at::Tensor& tokens, int64_t batch,
                         const std::function<QuantScheme(int)>& scheme_of, const at::Tensor& fp_logp) {
  at::NoGradGuard ng;
  const ModelConfig& c = m.config();
  const int64_t T = tokens.size(1);
  const auto pos = at::arange(T, at::kLong);
  CalibEffect e;
  std::vector<at::Tensor> parts;
  for (int64_t r = 0; r < tokens.size(0); r += batch) {
    const int64_t rows = std::min(batch, tokens.size(0) - r);
    const at::Tensor t = tokens.narrow(0, r, rows);
    at::Tensor h = m.embed(t);
    for (int64_t b = 0; b < c.n_layers; ++b) {
      BlockWeights w = m.load_block(b);
      const int n = int(m.block_desc(b).linears.size());
      std::vector<QuantScheme> s(m.block_desc(b).linears.size());
      for (int p = 0; p < n; ++p) {
        s[size_t(p)] = scheme_of(int(b * n + p));
        if (s[int(p)].quantized()) w.weight(p) = qdq_weight(w.weight(p), s[int(p)]).w_hat;
      }
      InputHook hook = [s](int p, const at::Tensor& x) { return qdq_act(x, s[int(p)]); };
      h = block_forward(c, w, h, pos, m.rope(T), hook);
    }
    const at::Tensor lp = at::log_softmax(m.logits(h), -1);
    const int64_t V = lp.size(-1);
    e.loss += at::nll_loss(lp.narrow(1, 0, T - 1).reshape({-1, V}), t.narrow(1, 1, T - 1).reshape({-1})).item<double>();
    if (fp_logp.defined()) {
      const at::Tensor base = fp_logp.narrow(0, r, rows);
      e.kld += (base.exp() * (base - lp)).sum(-1).sum().item<double>();
    } else {
      parts.push_back(lp);
    }
  }
  if (fp_logp.defined()) e.kld /= double(tokens.size(0) * T);
  else e.logp = at::cat(parts, 0);
  return e;
}

}  // namespace sr::test
