#include "quant/formats/group.h"

#include "common/error.h"

namespace sr {

GroupLayout group_layout(at::IntArrayRef shape, int64_t group_size) {
  SR_CHECK(!shape.empty(), "[group_layout] expected a tensor of rank >= 1, got a scalar");
  SR_CHECK(group_size > 0 || group_size == -1 || group_size == 0,
           "[group_layout] group_size must be > 0, -1 (per row) or 0 (per tensor), got ",
           group_size);
  GroupLayout g;
  g.shape = shape.vec();
  g.cols = shape.back();
  g.rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) g.rows *= shape[i];
  SR_CHECK(g.rows > 0 && g.cols > 0, "[group_layout] empty tensor of shape ", shape);
  g.group_size = group_size;
  if (group_size == 0) {  // one group for the whole tensor
    g.length = g.rows * g.cols;
    g.per_row = 1;
    g.n_groups = 1;
  } else if (group_size == -1 || g.cols <= group_size) {  // one group per row (§0.1: also I < G)
    g.length = g.cols;
    g.per_row = 1;
    g.n_groups = g.rows;
  } else {
    g.per_row = (g.cols + group_size - 1) / group_size;
    g.pad = g.per_row * group_size - g.cols;
    g.length = group_size;
    g.n_groups = g.rows * g.per_row;
  }
  return g;
}

at::Tensor to_groups(const at::Tensor& w, const GroupLayout& g, double pad_value) {
  SR_CHECK(w.sizes().vec() == g.shape, "[to_groups] tensor shape ", w.sizes(),
           " does not match the layout's ", at::IntArrayRef(g.shape));
  auto rows = w.reshape({g.rows, g.cols});
  if (g.pad > 0) rows = at::constant_pad_nd(rows, {0, g.pad}, pad_value);
  return rows.reshape({g.n_groups, g.length});
}

at::Tensor from_groups(const at::Tensor& wg, const GroupLayout& g) {
  SR_CHECK(wg.dim() == 2 && wg.size(0) == g.n_groups && wg.size(1) == g.length,
           "[from_groups] expected [", g.n_groups, ", ", g.length, "], got ", wg.sizes());
  auto rows = wg.reshape({g.rows, g.per_tensor() ? g.cols : g.per_row * g.length});
  if (g.pad > 0) rows = rows.narrow(1, 0, g.cols);
  return rows.reshape(g.shape);
}

at::Tensor groups_to_matrix(const at::Tensor& per_group, const GroupLayout& g) {
  SR_CHECK(per_group.numel() == g.n_groups, "[groups_to_matrix] expected ", g.n_groups,
           " values, got ", per_group.numel());
  if (g.per_tensor()) return per_group.reshape({1, 1});
  return per_group.reshape({g.rows, g.per_row});
}

at::Tensor matrix_to_groups(const at::Tensor& matrix, const GroupLayout& g) {
  const int64_t r = g.per_tensor() ? 1 : g.rows;
  SR_CHECK(matrix.dim() == 2 && matrix.size(0) == r && matrix.size(1) == g.per_row,
           "[matrix_to_groups] expected a [", r, ", ", g.per_row, "] scale matrix, got ",
           matrix.sizes());
  return matrix.reshape({g.n_groups});
}

at::Tensor imatrix_to_groups(const at::Tensor& imatrix, const GroupLayout& g) {
  auto opts = at::TensorOptions().dtype(at::kFloat);
  if (!imatrix.defined()) return at::ones({g.n_groups, g.length}, opts);
  SR_CHECK(imatrix.numel() == g.cols, "[imatrix_to_groups] imatrix has ", imatrix.numel(),
           " entries, the weight has ", g.cols, " input channels");
  auto row = imatrix.to(at::kFloat).reshape({1, g.cols}).expand({g.rows, g.cols});
  return to_groups(row.reshape(g.shape).contiguous(), g, 1e-5);
}

void check_tunables(const Tunables& t, const GroupLayout& g, const char* fn) {
  auto check = [&](const at::Tensor& x, const char* name, at::IntArrayRef want) {
    if (!x.defined()) return;
    SR_CHECK(x.scalar_type() == at::kFloat, "[", fn, "] tunable ", name, " must be fp32, got ",
             x.scalar_type());
    SR_CHECK(x.sizes() == want, "[", fn, "] tunable ", name, " must have shape ", want, ", got ",
             x.sizes());
  };
  check(t.v, "v", {g.n_groups, g.length});
  check(t.alpha, "alpha", {g.n_groups});
  check(t.beta, "beta", {g.n_groups});
  check(t.init_scale, "init_scale", {g.n_groups});
}

void check_group_size(int64_t group_size, const char* fn) {
  SR_CHECK(group_size > 0 || group_size == -1 || group_size == 0, "[", fn, "] group_size must be > 0, -1 or 0, got ",
           group_size);
}

GroupedWeight group_weight(const at::Tensor& w, int64_t group_size, const Tunables& t, const char* fn) {
  auto g = group_layout(w.sizes(), group_size);
  check_tunables(t, g, fn);
  return {g, to_groups(w.to(at::kFloat), g, 0.0)};
}

at::Tensor recip(const at::Tensor& x) {
  auto zero = x == 0;
  auto safe = at::where(zero, at::ones_like(x), x);
  return at::where(zero, at::zeros_like(x), safe.reciprocal());
}

at::Tensor group_amax(const at::Tensor& wg) { return std::get<0>(wg.abs().max(1)); }

at::Tensor scaled_amax(const at::Tensor& amax, const Tunables& t) {
  if (t.init_scale.defined() && t.beta.defined()) return amax * (t.init_scale * t.beta);
  if (t.init_scale.defined()) return amax * t.init_scale;
  if (t.beta.defined()) return amax * t.beta;
  return amax;
}

at::Tensor search_best_multiplier(const at::Tensor& wg, const at::Tensor& importance,
                                  const std::vector<float>& candidates,
                                  const std::function<at::Tensor(const at::Tensor&)>& qdq_with_init) {
  SR_CHECK(!candidates.empty(), "[search_best_multiplier] no candidates");
  SR_CHECK(wg.dim() == 2 && importance.sizes() == wg.sizes(), "[search_best_multiplier] expected "
           "wg [N, L] and importance of the same shape, got ", wg.sizes(), " and ", importance.sizes());
  at::NoGradGuard no_grad;
  auto w = wg.to(at::kFloat);
  auto q = importance.to(at::kFloat);
  at::Tensor best_c, best_e;
  for (float c : candidates) {
    auto init = at::full({w.size(0)}, c, w.options());
    auto e = (q * (qdq_with_init(init) - w).square()).sum(1);
    if (!best_c.defined()) {
      best_c = init, best_e = e;
      continue;
    }
    auto better = e < best_e;
    best_c = at::where(better, init, best_c);
    best_e = at::where(better, e, best_e);
  }
  return best_c;
}

bool fused_eligible(const at::Tensor& w, const Tunables& t) {
  auto cpu32 = [](const at::Tensor& x) {
    return !x.defined() || (x.device().is_cpu() && x.scalar_type() == at::kFloat);
  };
  return cpu32(w) && cpu32(t.v) && cpu32(t.alpha) && cpu32(t.beta) &&
         cpu32(t.init_scale) && !(t.init_scale.defined() && t.init_scale.requires_grad());
}

}  // namespace sr
