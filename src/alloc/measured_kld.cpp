#include "alloc/measured_kld.h"

#include "common/error.h"
#include "common/progress.h"

namespace sr {

std::vector<BlockSchemes> allocation_schemes(const Model& model, const LayerPlan& plan, const AllocProblem& p,
                                             const Allocation& a) {
  SR_CHECK(a.option.size() == p.layers.size(), "[autoscheme] allocation of ", a.option.size(), " layers for ",
           p.layers.size(), " candidates");
  std::vector<BlockSchemes> out;
  for (int64_t b = 0; b < model.config().n_layers; ++b) out.push_back(unquantized_block(model.block_desc(b)));
  for (const LayerChoice& l : plan.layers)
    if (l.block >= 0 && l.quantized()) out[size_t(l.block)][size_t(l.linear)] = l.scheme;  // fixed layers
  for (size_t i = 0; i < p.layers.size(); ++i)
    out[size_t(p.layers[i].block)][size_t(p.layers[i].linear)] = p.options[size_t(a.option[i])].scheme;
  return out;
}

std::vector<double> measured_kld(const Model& model, const std::vector<std::vector<BlockSchemes>>& assignments,
                                 const at::Tensor& tokens, int64_t batch, bool progress) {
  KldProbe probe(model, tokens, batch);
  Progress bar("measured KLD", int(assignments.size()), progress);
  std::vector<double> out;
  for (const auto& a : assignments) {
    out.push_back(probe.kld(a));
    bar.update(int(out.size()));
  }
  return out;
}

}  // namespace sr
