// Whole-weight qdq/encode/decode for ggml block types over the row hooks of
// quant/formats/ggml_frozen.h (contract in gguf_qdq.h).
#include "quant/gguf_qdq.h"

#include <cstring>

#include "common/error.h"
#include "quant/formats/ggml_types.h"
#include "quant/formats/group.h"

namespace sr::gguf_qdq {
namespace {

// Rows per parallel task: about 32k elements each.
int64_t grain(int64_t cols) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(cols, 1)); }

at::Tensor fp32_contiguous(const at::Tensor& w) { return w.detach().to(at::kFloat).contiguous(); }

void check_weight(const at::Tensor& w, const Frozen& f, const char* fn) {
  SR_CHECK(w.dim() == 2 && w.size(0) == f.rows && w.size(1) == f.cols, "[gguf_qdq::", fn, "] weight ", w.sizes(),
           " does not match the frozen ", ggml_type_name(f.type), " parameters of [", f.rows, ", ", f.cols, "]");
}

// v as a contiguous fp32 [O, I] tensor (undefined stays undefined).
at::Tensor offsets(const at::Tensor& v, const Frozen& f, const char* fn) {
  if (!v.defined()) return v;
  SR_CHECK(!f.searched_codes, "[gguf_qdq::", fn, "] parameters frozen with their searched codes (RTN) take no offsets");
  SR_CHECK(v.numel() == f.rows * f.cols && v.scalar_type() == at::kFloat, "[gguf_qdq::", fn, "] offsets v must be ",
           f.rows * f.cols, " fp32 values, got ", v.sizes(), " ", v.scalar_type());
  return v.detach().contiguous().reshape({f.rows, f.cols});
}

uint64_t row_bytes(const Frozen& f) { return ggml_row_bytes(f.type, f.cols); }

// The searched blocks of every row, back to back.
at::Tensor searched_bytes(const Frozen& f) {
  const uint64_t rb = row_bytes(f);
  auto out = at::empty({f.rows, int64_t(rb)}, at::kByte);
  uint8_t* dst = out.data_ptr<uint8_t>();
  for (int64_t r = 0; r < f.rows; ++r) std::memcpy(dst + uint64_t(r) * rb, f.row[size_t(r)].blocks.data(), rb);
  return out;
}

// Forward of the fused path: ŵ and ∂ŵ/∂v, both [O, I].
std::pair<at::Tensor, at::Tensor> forward_rows(const at::Tensor& w, const Frozen& f, const at::Tensor& v) {
  auto w_hat = at::empty({f.rows, f.cols}, at::kFloat);
  auto dv = at::empty({f.rows, f.cols}, at::kFloat);
  const float* x = w.data_ptr<float>();
  const float* pv = v.defined() ? v.data_ptr<float>() : nullptr;
  float* out = w_hat.data_ptr<float>();
  float* pdv = dv.data_ptr<float>();
  const int64_t n = f.cols;
  at::parallel_for(0, f.rows, grain(n), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r)
      ggml_qdq_row_frozen_grad(f.row[size_t(r)], x + r * n, pv ? pv + r * n : nullptr, out + r * n, pdv + r * n);
  });
  return {w_hat, dv};
}

// Inputs: w [O, I] (differentiable when it requires grad), v (any shape with O·I elements).
// Output: ŵ [O, I]. The frozen parameters are constants, only read in the forward (the
// backward needs just the saved ∂ŵ/∂v), so a plain pointer suffices.
struct QdqFunction : torch::autograd::Function<QdqFunction> {
  using Ctx = torch::autograd::AutogradContext;
  using List = torch::autograd::variable_list;

  static at::Tensor forward(Ctx* ctx, const at::Tensor& w, const at::Tensor& v, const Frozen* f) {
    auto x = fp32_contiguous(w);
    auto [w_hat, dv] = forward_rows(x, *f, offsets(v, *f, "qdq"));
    ctx->save_for_backward({dv});
    ctx->saved_data["v_shape"] = v.sizes().vec();
    ctx->saved_data["want_w"] = w.requires_grad();
    return w_hat;
  }

  static List backward(Ctx* ctx, List grads) {
    const at::Tensor dv = ctx->get_saved_variables()[0];
    List out(3);
    if (!grads[0].defined()) return out;
    const at::Tensor g = grads[0].to(at::kFloat);
    // where(): blocked elements get +0 exactly as a clamp's backward gives (g * 0 could be -0).
    const at::Tensor inside = dv != 0, zero = at::zeros_like(g);
    out[1] = at::where(inside, g * dv, zero).reshape(ctx->saved_data["v_shape"].toIntVector());
    if (ctx->saved_data["want_w"].toBool()) out[0] = at::where(inside, g, zero);
    return out;
  }
};

// Types whose rounding exists only as the CPU row functions: the table hooks (IQ4's table, the
// grid i-quants).
bool cpu_only(GgmlType t) { return ggml_type_traits(t).has_table(); }

// Frozen parameters as [O, I/group] tensors (reference path).
std::pair<at::Tensor, at::Tensor> param_matrices(const Frozen& f) {
  const int64_t groups = f.row.empty() ? 0 : f.row[0].n_groups();
  auto scale = at::empty({f.rows, groups}, at::kFloat), min = at::empty({f.rows, groups}, at::kFloat);
  for (int64_t r = 0; r < f.rows; ++r) {
    std::memcpy(scale.data_ptr<float>() + r * groups, f.row[size_t(r)].scale.data(), size_t(groups) * 4);
    std::memcpy(min.data_ptr<float>() + r * groups, f.row[size_t(r)].min.data(), size_t(groups) * 4);
  }
  return {scale, min};
}

}  // namespace

int64_t cols_of(GgmlType type, int64_t row_bytes) {
  const GgmlTypeTraits& t = ggml_type_traits(type);
  SR_CHECK(row_bytes % t.type_size == 0, "[gguf_qdq] ", row_bytes, " bytes are not whole ", t.name, " blocks");
  return row_bytes / t.type_size * t.block_size;
}

std::shared_ptr<const Frozen> freeze(const at::Tensor& w, GgmlType type, const at::Tensor& importance,
                                     bool searched_codes) {
  SR_CHECK(ggml_has_block_params(type), "[gguf_qdq::freeze] ", ggml_type_name(type), " has no block parameters");
  SR_CHECK(w.dim() == 2, "[gguf_qdq::freeze] expected a weight [O, I], got ", w.sizes());
  auto f = std::make_shared<Frozen>();
  f->type = type;
  f->rows = w.size(0);
  f->cols = w.size(1);
  f->searched_codes = searched_codes;
  ggml_row_bytes(type, f->cols);  // throws unless I is whole blocks
  at::Tensor imp;
  if (importance.defined()) {
    SR_CHECK(importance.numel() == f->cols, "[gguf_qdq::freeze] importance has ", importance.numel(),
             " values, expected one per input column (", f->cols, ")");
    imp = fp32_contiguous(importance).reshape({-1});
  }
  const at::Tensor x = fp32_contiguous(w);
  const float* px = x.data_ptr<float>();
  const float* pi = imp.defined() ? imp.data_ptr<float>() : nullptr;
  f->row.resize(size_t(f->rows));
  const int64_t n = f->cols;
  // k-quant searches cost ~1 us per element: a few rows per task keep threads busy.
  at::parallel_for(0, f->rows, std::max<int64_t>(1, 4096 / n), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r)
      f->row[size_t(r)] = pi ? ggml_search_row_weighted(type, px + r * n, n, pi) : ggml_search_row_ref(type, px + r * n, n);
  });
  return f;
}

at::Tensor qdq(const at::Tensor& w, const Frozen& f, const at::Tensor& v) {
  check_weight(w, f, "qdq");
  if (f.searched_codes) {
    offsets(v, f, "qdq");  // refuses offsets
    return decode(searched_bytes(f), f.type, f.cols);
  }
  const bool on_cpu = w.is_cpu() && (!v.defined() || v.is_cpu());
  if (!on_cpu && !cpu_only(f.type)) return qdq_reference(w, f, v);
  // The i-quants round on the CPU wherever the weight lives (to() carries the gradient back).
  const at::Tensor vv = v.defined() ? v.cpu() : at::zeros({f.rows, f.cols}, at::kFloat);
  const at::Tensor w_hat = QdqFunction::apply(on_cpu ? w : w.cpu(), vv, &f);
  return on_cpu ? w_hat : w_hat.to(w.device());
}

at::Tensor qdq_reference(const at::Tensor& w, const Frozen& f, const at::Tensor& v) {
  check_weight(w, f, "qdq_reference");
  const at::Tensor searched = decode(searched_bytes(f), f.type, f.cols).to(w.device());
  if (f.searched_codes) {
    offsets(v, f, "qdq_reference");
    return searched;
  }
  SR_CHECK(!cpu_only(f.type), "[gguf_qdq::qdq_reference] ", ggml_type_name(f.type), " rounds to a table of levels or "
           "a grid, which only the CPU path (ggml_iquants_nl.h, ggml_iquants_grid.h) implements");
  const int64_t group = f.row.empty() ? 1 : f.row[0].group;
  auto [s_mat, m_mat] = param_matrices(f);
  auto s = s_mat.to(w.device()).repeat_interleave(group, 1), m = m_mat.to(w.device()).repeat_interleave(group, 1);
  const bool asym = !f.row.empty() && f.row[0].asymmetric;
  const double lo = f.row.empty() ? 0 : f.row[0].code_min, hi = f.row.empty() ? 0 : f.row[0].code_max;
  auto x = w.to(at::kFloat);
  auto safe_s = at::where(s == 0, at::ones_like(s), s);
  auto u = asym ? (x + m) / safe_s : x / safe_s;
  if (v.defined()) u = u + v.reshape({f.rows, f.cols});
  auto q = at::clamp(ste(at::round(u), u), lo, hi);
  // Zero-scale sub-blocks keep their searched codes: no gradient (a +0, not s·0 = -0 when s is -0).
  q = at::where(s == 0, q.detach(), q);
  auto w_hat = asym ? s * q - m : s * q;
  return at::where(s == 0, searched, w_hat);
}

at::Tensor encode(const at::Tensor& w, const Frozen& f, const at::Tensor& v) {
  check_weight(w, f, "encode");
  const at::Tensor pv_t = offsets(v, f, "encode");
  if (f.searched_codes) return searched_bytes(f);
  const at::Tensor x = fp32_contiguous(w);
  const uint64_t rb = row_bytes(f);
  auto out = at::empty({f.rows, int64_t(rb)}, at::kByte);
  const float* px = x.data_ptr<float>();
  const float* pv = pv_t.defined() ? pv_t.data_ptr<float>() : nullptr;
  uint8_t* dst = out.data_ptr<uint8_t>();
  const int64_t n = f.cols;
  at::parallel_for(0, f.rows, grain(n), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r)
      ggml_encode_row_frozen(f.row[size_t(r)], px + r * n, pv ? pv + r * n : nullptr, dst + uint64_t(r) * rb);
  });
  return out;
}

at::Tensor decode(const at::Tensor& bytes, GgmlType type, int64_t cols) {
  const uint64_t rb = ggml_row_bytes(type, cols);
  SR_CHECK(bytes.dim() == 2 && bytes.scalar_type() == at::kByte && uint64_t(bytes.size(1)) == rb,
           "[gguf_qdq::decode] expected uint8 [rows, ", rb, "] of ", ggml_type_name(type), " rows of ", cols,
           " elements, got ", bytes.scalar_type(), " ", bytes.sizes());
  const at::Tensor src = bytes.contiguous();
  const int64_t rows = src.size(0);
  auto out = at::empty({rows, cols}, at::kFloat);
  const GgmlDequantizeRow dequantize = ggml_codec(type).dequantize_row;
  const uint8_t* p = src.data_ptr<uint8_t>();
  float* y = out.data_ptr<float>();
  at::parallel_for(0, rows, grain(cols), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) dequantize(p + uint64_t(r) * rb, y + r * cols, cols);
  });
  return out;
}

}  // namespace sr::gguf_qdq
