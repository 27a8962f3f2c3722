#include "alloc/measured_kld.h"

#include "common/error.h"
#include "common/progress.h"
#include "model/llama.h"
#include "quant/qdq.h"

namespace sr {

at::Tensor quantized_block_forward(const Model& model, int64_t b, const BlockSchemes& schemes, const at::Tensor& h,
                                   const at::Tensor& positions, const RopeTables& rope) {
  at::NoGradGuard ng;
  BlockWeights w = model.load_block(b);
  for (Proj p : kAllProjs)
    if (schemes[int(p)].quantized()) w.weight(p) = qdq_weight(w.weight(p), schemes[int(p)]).w_hat;
  InputHook hook = [&schemes](Proj p, const at::Tensor& x) {
    const QuantScheme& s = schemes[int(p)];
    if (!s.act_quantized()) return x;
    ActQuantState st;
    if (!s.act_dynamic) st.act_max = x.abs().max();  // static: this tensor's range, as DeltaLoss scores it
    return qdq_act(x, s, st);
  };
  return block_forward(model.config(), w, h, positions, rope, hook);
}

std::vector<BlockSchemes> allocation_schemes(const Model& model, const LayerPlan& plan, const AllocProblem& p,
                                             const Allocation& a) {
  SR_CHECK(a.option.size() == p.layers.size(), "[autoscheme] allocation of ", a.option.size(), " layers for ",
           p.layers.size(), " candidates");
  std::vector<BlockSchemes> out(size_t(model.config().n_layers));
  const QuantScheme keep = preset_scheme("BF16");
  for (BlockSchemes& s : out) s.fill(keep);
  for (const LayerChoice& l : plan.layers)
    if (l.block >= 0 && l.quantized()) out[size_t(l.block)][int(l.proj)] = l.scheme;  // fixed layers
  for (size_t i = 0; i < p.layers.size(); ++i)
    out[size_t(p.layers[i].block)][int(p.layers[i].proj)] = p.options[size_t(a.option[i])].scheme;
  return out;
}

std::vector<double> measured_kld(const Model& model, const std::vector<std::vector<BlockSchemes>>& assignments,
                                 const at::Tensor& tokens, int64_t batch, bool progress) {
  at::NoGradGuard ng;
  const ModelConfig& c = model.config();
  SR_CHECK(tokens.dim() == 2 && tokens.size(0) >= 1 && tokens.size(1) >= 2 && tokens.scalar_type() == at::kLong,
           "[autoscheme] expected calibration tokens [N >= 1, T >= 2] int64, got ", tokens.sizes());
  SR_CHECK(batch >= 1, "[autoscheme] batch must be positive, got ", batch);
  for (const auto& a : assignments)
    SR_CHECK(int64_t(a.size()) == c.n_layers, "[autoscheme] an assignment covers ", a.size(), " of ", c.n_layers,
             " blocks");
  const int64_t N = tokens.size(0), T = tokens.size(1);
  const at::Tensor pos = at::arange(T, at::kLong);
  const RopeTables& rope = model.rope(T);
  std::vector<double> kl_sum(assignments.size(), 0.0);
  const int64_t n_batches = (N + batch - 1) / batch;
  Progress bar("measured KLD", int(n_batches * int64_t(assignments.size() + 1)), progress);
  int done = 0;
  for (int64_t r = 0; r < N; r += batch) {
    const at::Tensor t = tokens.narrow(0, r, std::min(batch, N - r));
    at::Tensor h = model.embed(t);
    for (int64_t b = 0; b < c.n_layers; ++b) h = model.run_block(b, model.load_block(b), h, pos, rope);
    const at::Tensor fp = at::log_softmax(model.logits(h), -1);
    bar.update(++done);
    for (size_t k = 0; k < assignments.size(); ++k) {
      at::Tensor q = model.embed(t);
      for (int64_t b = 0; b < c.n_layers; ++b) q = quantized_block_forward(model, b, assignments[k][size_t(b)], q, pos, rope);
      const at::Tensor lq = at::log_softmax(model.logits(q), -1);
      kl_sum[k] += (fp.exp() * (fp - lq)).sum(at::kDouble).item<double>();
      bar.update(++done);
    }
  }
  for (double& v : kl_sum) v /= double(N * T);
  return kl_sum;
}

}  // namespace sr
