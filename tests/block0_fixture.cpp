#include "block0_fixture.h"

namespace sr::test {

std::unique_ptr<Block0> block0(RandomModelSpec s, int64_t n, int64_t T) {
  auto f = std::make_unique<Block0>();
  s.layers = 1;
  s.vocab = 128;
  f->model = Model::open(write_random_hf_model(f->dir.path(), s));
  at::manual_seed(5);
  f->in.blocks = {0};
  f->in.fp = {f->model->load_block(0)};
  f->in.x_in = f->model->embed(at::randint(0, s.vocab, {n, T}, at::kLong));
  f->in.mask = at::ones({n, T}, at::kBool);
  at::NoGradGuard ng;
  f->in.y_ref = unit_forward(f->model->config(), f->in.fp, {nullptr}, f->in.x_in.all(), f->model->rope(T));
  return f;
}

bool same_layers(const UnitResult& a, const UnitResult& b) {
  if (a.layers.size() != b.layers.size()) return false;
  for (size_t i = 0; i < a.layers.size(); ++i)
    if (!at::equal(a.layers[i].dequantized(), b.layers[i].dequantized())) return false;
  return true;
}

}  // namespace sr::test
